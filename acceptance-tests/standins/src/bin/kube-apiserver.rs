//! STAND-IN for `kube-apiserver` (see the crate's README.md).
fn main() {
    std::process::exit(strata_standins::apiserver::main(std::env::args().collect()));
}
