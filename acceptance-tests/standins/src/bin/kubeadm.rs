//! STAND-IN for `kubeadm` (see the crate's README.md).
fn main() {
    std::process::exit(strata_standins::kubeadm::main(std::env::args().collect()));
}
