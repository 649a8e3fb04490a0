//! terraform-provider-strata: started by Terraform (or by hand with `--debug`).

use std::process::ExitCode;
use std::sync::Arc;

use strata_plugin_server::{init_logging, serve, ServeOptions};
use strata_provider::grpc::ProviderService;
use strata_provider::provider::{version_text, StrataProvider, SOURCE_ADDRESS, VERSION};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Before the handshake check: `--version` is for people and scripts, not Terraform.
    if args.iter().any(|a| a == "--version" || a == "-version") {
        print!("{}", version_text());
        return ExitCode::SUCCESS;
    }
    let debug = args.iter().any(|a| a == "--debug" || a == "-debug");
    init_logging();
    tracing::info!(version = VERSION, "terraform-provider-strata starting");
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("terraform-provider-strata: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let service = ProviderService::new(Arc::new(StrataProvider));
    runtime.block_on(serve(service, ServeOptions { provider_address: SOURCE_ADDRESS.to_string(), debug }))
}
