//! STAND-IN for `kubelet` (see the crate's README.md).
fn main() {
    std::process::exit(strata_standins::kubelet::main(std::env::args().collect()));
}
