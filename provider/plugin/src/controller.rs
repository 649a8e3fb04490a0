//! `plugin.GRPCController`: Terraform's way of telling the plugin to exit.

use strata_proto::plugin::grpc_controller_server::GrpcController;
use strata_proto::plugin::Empty;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

/// Cancels `shutdown` when Terraform calls `Shutdown`.
pub struct Controller {
    shutdown: CancellationToken,
    /// In debug mode the server outlives single Terraform runs, so Shutdown
    /// is acknowledged but ignored; only a signal stops it.
    honour_shutdown: bool,
}

impl Controller {
    /// A controller that stops the server through `shutdown` unless in debug mode.
    pub fn new(shutdown: CancellationToken, debug: bool) -> Self {
        Self { shutdown, honour_shutdown: !debug }
    }
}

#[tonic::async_trait]
impl GrpcController for Controller {
    async fn shutdown(&self, _request: Request<Empty>) -> Result<Response<Empty>, Status> {
        if self.honour_shutdown {
            tracing::debug!("plugin shutdown requested by terraform");
            self.shutdown.cancel();
        } else {
            tracing::debug!("ignoring shutdown request in debug mode");
        }
        Ok(Response::new(Empty {}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shutdown_cancels_the_token() {
        let token = CancellationToken::new();
        let c = Controller::new(token.clone(), false);
        c.shutdown(Request::new(Empty {})).await.unwrap();
        assert!(token.is_cancelled());
    }

    #[tokio::test]
    async fn debug_mode_keeps_serving() {
        let token = CancellationToken::new();
        let c = Controller::new(token.clone(), true);
        c.shutdown(Request::new(Empty {})).await.unwrap();
        assert!(!token.is_cancelled());
    }
}
