//! terraform-provider-strata: started by Terraform (or by hand with `--debug`).

use std::process::ExitCode;
use std::sync::Arc;

use strata_plugin_server::{init_logging, serve, ServeOptions};
use strata_provider::grpc::ProviderService;
use strata_provider::provider::{StrataProvider, SOURCE_ADDRESS};

fn main() -> ExitCode {
    let debug = std::env::args().skip(1).any(|a| a == "--debug" || a == "-debug");
    init_logging();
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
