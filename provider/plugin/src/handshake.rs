//! go-plugin start-up contract: the environment Terraform hands us and the
//! single stdout line we answer with.

use std::fmt;
use std::path::Path;

use base64::Engine as _;

/// Environment variable Terraform sets to prove the binary was launched by it.
pub const MAGIC_COOKIE_KEY: &str = "TF_PLUGIN_MAGIC_COOKIE";
/// Value of [`MAGIC_COOKIE_KEY`] shared by Terraform and every provider.
pub const MAGIC_COOKIE_VALUE: &str = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";
/// Comma-separated plugin protocol versions the client can speak.
pub const PROTOCOL_VERSIONS_KEY: &str = "PLUGIN_PROTOCOL_VERSIONS";
/// PEM client certificate for AutoMTLS (absent when Terraform disables TLS).
pub const CLIENT_CERT_KEY: &str = "PLUGIN_CLIENT_CERT";
/// go-plugin's own protocol version (first field of the handshake line).
pub const CORE_PROTOCOL_VERSION: u32 = 1;
/// The Terraform plugin protocol this server speaks.
pub const APP_PROTOCOL_VERSION: u32 = 6;

/// Why the process must not start serving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeError {
    /// Started by hand (or by something that is not Terraform).
    NotLaunchedByTerraform,
    /// Terraform offered protocol versions that do not include 6.
    UnsupportedProtocol(String),
}

impl fmt::Display for HandshakeError {
    // One line each: Terraform and humans both read these from stderr.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotLaunchedByTerraform => f.write_str(
                "This binary is a plugin. These are not meant to be executed directly. \
                 Please execute the program that consumes these plugins, which will load \
                 any plugins automatically (this is a Terraform provider: run it through terraform).",
            ),
            Self::UnsupportedProtocol(offered) => write!(
                f,
                "This Terraform provider speaks plugin protocol {APP_PROTOCOL_VERSION}, but the \
                 launching program offered only protocol version(s) {offered:?}. \
                 Use Terraform v1.0 or later."
            ),
        }
    }
}

impl std::error::Error for HandshakeError {}

/// Checks the launch environment. `env` looks a variable up (injected so the
/// check is testable without touching the real process environment).
pub fn check_launch_env(env: impl Fn(&str) -> Option<String>) -> Result<(), HandshakeError> {
    if env(MAGIC_COOKIE_KEY).as_deref() != Some(MAGIC_COOKIE_VALUE) {
        return Err(HandshakeError::NotLaunchedByTerraform);
    }
    // go-plugin falls back to the server's default version when the variable
    // is absent; ours is 6.
    match env(PROTOCOL_VERSIONS_KEY) {
        None => Ok(()),
        Some(list) if offers_version(&list, APP_PROTOCOL_VERSION) => Ok(()),
        Some(list) => Err(HandshakeError::UnsupportedProtocol(list)),
    }
}

fn offers_version(list: &str, wanted: u32) -> bool {
    list.split(',').filter_map(|v| v.trim().parse::<u32>().ok()).any(|v| v == wanted)
}

/// Formats the go-plugin handshake line (without the trailing newline):
/// `1|6|unix|<path>|grpc|<base64 raw-std DER of the server cert, or empty>`.
pub fn handshake_line(socket: &Path, server_cert_der: Option<&[u8]>) -> String {
    // Raw (unpadded) standard base64: go-plugin decodes with RawStdEncoding.
    let cert =
        server_cert_der.map(|der| base64::engine::general_purpose::STANDARD_NO_PAD.encode(der)).unwrap_or_default();
    format!("{CORE_PROTOCOL_VERSION}|{APP_PROTOCOL_VERSION}|unix|{}|grpc|{cert}", socket.display())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn cookie_is_required() {
        assert_eq!(check_launch_env(env(&[])), Err(HandshakeError::NotLaunchedByTerraform));
        assert_eq!(check_launch_env(env(&[(MAGIC_COOKIE_KEY, "nope")])), Err(HandshakeError::NotLaunchedByTerraform));
        assert_eq!(check_launch_env(env(&[(MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE)])), Ok(()));
    }

    #[test]
    fn protocol_six_must_be_offered_in_any_order() {
        for ok in ["6", "6,5", "5,6", " 5 , 6 "] {
            let e = env(&[(MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE), (PROTOCOL_VERSIONS_KEY, ok)]);
            assert_eq!(check_launch_env(e), Ok(()), "{ok}");
        }
        let e = env(&[(MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE), (PROTOCOL_VERSIONS_KEY, "4,5")]);
        assert_eq!(check_launch_env(e), Err(HandshakeError::UnsupportedProtocol("4,5".into())));
    }

    #[test]
    fn error_messages_are_single_lines() {
        for e in [HandshakeError::NotLaunchedByTerraform, HandshakeError::UnsupportedProtocol("5".into())] {
            let text = e.to_string();
            assert!(!text.contains('\n'), "{text}");
            assert!(text.to_lowercase().contains("terraform"), "{text}");
        }
    }

    #[test]
    fn handshake_line_without_tls_has_empty_cert_field() {
        let line = handshake_line(Path::new("/tmp/plugin123/plugin.sock"), None);
        assert_eq!(line, "1|6|unix|/tmp/plugin123/plugin.sock|grpc|");
    }

    #[test]
    fn handshake_line_cert_is_unpadded_standard_base64() {
        // 4 bytes would need "==" padding; 0xfb 0xff exercise '+' and '/'.
        let der = [0xfbu8, 0xff, 0xbf, 0x01];
        let line = handshake_line(Path::new("/s"), Some(&der));
        let fields: Vec<&str> = line.split('|').collect();
        assert_eq!(fields.len(), 6);
        assert_eq!(fields[5], "+/+/AQ");
        let decoded = base64::engine::general_purpose::STANDARD_NO_PAD.decode(fields[5]).unwrap();
        assert_eq!(decoded, der);
    }
}
