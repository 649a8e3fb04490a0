//! STAND-IN `k3s` (server, agent, etcd-snapshot, kubectl, crictl); all logic in the library.
fn main() {
    std::process::exit(strata_standins::k3s::main(std::env::args().collect()));
}
