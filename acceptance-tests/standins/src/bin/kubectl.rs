//! STAND-IN for `kubectl` (see the crate's README.md).
fn main() {
    std::process::exit(strata_standins::kubectl::main(std::env::args().collect()));
}
