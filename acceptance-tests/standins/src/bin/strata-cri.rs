//! `strata-cri`: the lab's CRI TEST CLIENT (crictl-like; Debian 12 has no crictl). Not a
//! stand-in: see `strata_standins::cri_cli`.
fn main() {
    std::process::exit(strata_standins::cri_cli::main(std::env::args().collect()));
}
