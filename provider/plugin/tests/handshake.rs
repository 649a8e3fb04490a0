//! Start-up contract and AutoMTLS, exercised against the real echo provider
//! process over its Unix socket.

mod common;

use common::*;
use strata_proto::tfplugin6::get_provider_schema;
use strata_proto::tfplugin6::provider_client::ProviderClient;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

fn assert_refused(mut plugin: Plugin, expect_in_message: &str) {
    let status = plugin.wait_exit(WAIT).expect("provider exits on its own");
    assert_eq!(status.code(), Some(1));
    assert_eq!(plugin.next_stdout_line(), None, "nothing may be printed on stdout");
    let stderr = plugin.stderr();
    assert_eq!(stderr.lines().count(), 1, "exactly one line on stderr: {stderr:?}");
    assert!(stderr.contains(expect_in_message), "{stderr}");
}

#[test]
fn refuses_to_run_without_the_magic_cookie() {
    assert_refused(Plugin::start(&[], &[]), "This binary is a plugin");
    assert_refused(Plugin::start(&[(COOKIE_KEY, "wrong")], &[]), "terraform");
}

#[test]
fn refuses_when_protocol_6_is_not_offered() {
    let plugin = Plugin::start(&[(COOKIE_KEY, COOKIE), ("PLUGIN_PROTOCOL_VERSIONS", "4,5")], &[]);
    assert_refused(plugin, "protocol 6");
}

#[tokio::test]
async fn automtls_with_a_terraform_like_client_certificate() {
    let client = ClientIdentity::terraform_like();
    let plugin = Plugin::start_like_terraform(Some(&client.pem), &[]);
    let hs = plugin.handshake();
    assert!(hs.server_cert.is_some(), "field 6 carries the server certificate: {:?}", hs.fields);
    assert!(hs.socket.exists());

    let channel = tls_channel(&hs, Some(&client)).await.expect("mTLS connect");
    assert_schema_call_works(channel.clone()).await;

    let health = HealthClient::new(channel)
        .check(HealthCheckRequest { service: "plugin".into() })
        .await
        .expect("health check")
        .into_inner();
    assert_eq!(health.status(), ServingStatus::Serving);
}

/// A call over TLS as `identity`; must fail (at connect or at the call),
/// bounded so a hang counts as a failure of the test rather than a pass.
async fn call_as(hs: &Handshake, identity: Option<&ClientIdentity>) -> Result<(), String> {
    let attempt = async {
        let channel = tls_channel(hs, identity).await.map_err(|e| format!("connect: {e}"))?;
        ProviderClient::new(channel)
            .get_provider_schema(get_provider_schema::Request {})
            .await
            .map(|_| ())
            .map_err(|e| format!("call: {e}"))
    };
    tokio::time::timeout(WAIT, attempt).await.expect("attempt finished in time")
}

#[tokio::test]
async fn mtls_rejects_other_certificates_and_missing_ones() {
    let terraform = ClientIdentity::terraform_like();
    let plugin = Plugin::start_like_terraform(Some(&terraform.pem), &[]);
    let hs = plugin.handshake();

    let impostor = ClientIdentity::terraform_like();
    assert!(call_as(&hs, Some(&impostor)).await.is_err(), "a different certificate must be refused");
    assert!(call_as(&hs, None).await.is_err(), "a client without certificate must be refused");

    // The failed handshakes did not take the server down.
    call_as(&hs, Some(&terraform)).await.expect("the right client is still served");
    assert!(plugin_still_running(plugin));
}

fn plugin_still_running(mut plugin: Plugin) -> bool {
    matches!(plugin.child.try_wait(), Ok(None))
}

#[tokio::test]
async fn plaintext_when_terraform_sends_no_client_certificate() {
    let plugin = Plugin::start_like_terraform(None, &[]);
    let hs = plugin.handshake();
    assert_eq!(hs.fields[5], "", "no TLS: empty certificate field");
    let channel = plain_channel(hs.socket.clone()).await.expect("plaintext connect");
    assert_schema_call_works(channel).await;
}
