//! Shutdown, signals, debug/reattach mode and logging of the echo provider process.

mod common;

use common::*;
use serde_json::Value;
use strata_proto::plugin::grpc_controller_client::GrpcControllerClient;
use strata_proto::plugin::Empty;

#[tokio::test]
async fn controller_shutdown_exits_cleanly_and_removes_the_socket_dir() {
    let client = ClientIdentity::terraform_like();
    let mut plugin = Plugin::start_like_terraform(Some(&client.pem), &[]);
    let hs = plugin.handshake();
    let socket_dir = hs.socket.parent().unwrap().to_path_buf();
    assert!(socket_dir.is_dir());

    let channel = tls_channel(&hs, Some(&client)).await.unwrap();
    GrpcControllerClient::new(channel).shutdown(Empty {}).await.expect("Shutdown RPC");

    let status = plugin.wait_exit(std::time::Duration::from_secs(5)).expect("exited after Shutdown");
    assert!(status.success(), "{status:?}");
    assert!(!socket_dir.exists(), "socket directory removed: {}", socket_dir.display());
}

#[tokio::test]
async fn sigint_is_ignored_in_normal_mode() {
    let mut plugin = Plugin::start_like_terraform(None, &[]);
    let hs = plugin.handshake();
    plugin.signal("INT");
    plugin.signal("INT");

    let channel = plain_channel(hs.socket.clone()).await.expect("still accepting");
    assert_schema_call_works(channel.clone()).await;
    assert!(plugin.child.try_wait().unwrap().is_none(), "still running after SIGINT");

    // SIGTERM, by contrast, stops it cleanly.
    plugin.signal("TERM");
    let status = plugin.wait_exit(WAIT).expect("exited after SIGTERM");
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn debug_mode_prints_reattach_config_and_serves_until_signalled() {
    // No cookie: debug mode is started by a human, not by Terraform.
    let mut plugin = Plugin::start(&[], &["--debug"]);
    let reattach = loop {
        let line = plugin.next_stdout_line().expect("reattach instructions on stdout");
        if let Some(rest) = line.trim().strip_prefix("TF_REATTACH_PROVIDERS='") {
            break rest.strip_suffix('\'').expect("closing quote").to_string();
        }
    };
    let config: Value = serde_json::from_str(&reattach).expect("valid JSON");
    let entry = &config["registry.terraform.io/strata-iac/echo"];
    assert_eq!(entry["Protocol"], "grpc");
    assert_eq!(entry["ProtocolVersion"], 6);
    assert_eq!(entry["Test"], true);
    assert_eq!(entry["Pid"], plugin.child.id());
    assert_eq!(entry["Addr"]["Network"], "unix");
    let socket = std::path::PathBuf::from(entry["Addr"]["String"].as_str().unwrap());

    let channel = plain_channel(socket.clone()).await.expect("plaintext connect");
    assert_schema_call_works(channel.clone()).await;

    // A debug provider outlives Terraform runs: Shutdown does not stop it.
    GrpcControllerClient::new(channel.clone()).shutdown(Empty {}).await.unwrap();
    assert_schema_call_works(channel).await;

    plugin.signal("INT");
    let status = plugin.wait_exit(WAIT).expect("debug provider stops on SIGINT");
    assert!(status.success(), "{status:?}");
    assert!(!socket.parent().unwrap().exists());
}

/// Runs one GetProviderSchema (which logs at info) and returns stderr.
async fn stderr_after_one_call(env: &[(&str, &str)]) -> String {
    let mut plugin = Plugin::start_like_terraform(None, env);
    let hs = plugin.handshake();
    let channel = plain_channel(hs.socket.clone()).await.unwrap();
    assert_schema_call_works(channel.clone()).await;
    GrpcControllerClient::new(channel).shutdown(Empty {}).await.unwrap();
    plugin.wait_exit(WAIT).expect("exited");
    plugin.stderr()
}

#[tokio::test]
async fn logs_are_hclog_json_lines_on_stderr() {
    let stderr = stderr_after_one_call(&[("TF_LOG", "INFO")]).await;
    let lines: Vec<Value> =
        stderr.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();
    for line in &lines {
        for key in ["@level", "@message", "@timestamp", "@module"] {
            assert!(line.get(key).is_some(), "{key} missing in {line}");
        }
    }
    let event = lines
        .iter()
        .find(|l| l["@message"] == "returning provider schema")
        .unwrap_or_else(|| panic!("schema event missing from stderr: {stderr}"));
    assert_eq!(event["@level"], "info");
    assert_eq!(event["rpc"], "GetProviderSchema");
    assert_eq!(event["resources"], 1);
    assert!(event["@timestamp"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn tf_log_provider_takes_precedence_over_tf_log() {
    let stderr = stderr_after_one_call(&[("TF_LOG", "TRACE"), ("TF_LOG_PROVIDER", "error")]).await;
    assert!(!stderr.contains("returning provider schema"), "{stderr}");
}
