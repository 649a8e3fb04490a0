//! Debug mode: the provider runs on its own (e.g. under a debugger) and
//! Terraform attaches to it through `TF_REATTACH_PROVIDERS`.

use std::path::Path;

use serde_json::json;

/// The `TF_REATTACH_PROVIDERS` value for one provider. `"Test": true` is
/// mandatory for protocol 6: it tells go-plugin not to own (kill) the process.
pub fn reattach_config(provider_address: &str, pid: u32, socket: &Path) -> serde_json::Value {
    json!({
        provider_address: {
            "Protocol": "grpc",
            "ProtocolVersion": 6,
            "Pid": pid,
            "Test": true,
            "Addr": { "Network": "unix", "String": socket.to_string_lossy() },
        }
    })
}

/// The human hint printed on stdout, ending in a ready-to-paste shell line.
pub fn reattach_instructions(provider_address: &str, pid: u32, socket: &Path) -> String {
    let config = reattach_config(provider_address, pid, socket).to_string();
    // The JSON goes inside single quotes; escape any quote a path might hold.
    let quoted = config.replace('\'', r"'\''");
    format!(
        "Provider started in debug mode. To attach Terraform CLI, set the TF_REATTACH_PROVIDERS \
         environment variable with the following:\n\n\tTF_REATTACH_PROVIDERS='{quoted}'\n\n\
         Stop the provider with Ctrl-C when done.\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reattach_json_has_the_fields_terraform_needs() {
        let v = reattach_config("registry.terraform.io/strata-iac/strata", 42, Path::new("/tmp/p/plugin.sock"));
        let p = &v["registry.terraform.io/strata-iac/strata"];
        assert_eq!(p["Protocol"], "grpc");
        assert_eq!(p["ProtocolVersion"], 6);
        assert_eq!(p["Pid"], 42);
        assert_eq!(p["Test"], true);
        assert_eq!(p["Addr"]["Network"], "unix");
        assert_eq!(p["Addr"]["String"], "/tmp/p/plugin.sock");
    }

    #[test]
    fn instructions_contain_a_pasteable_line() {
        let text = reattach_instructions("example.com/a/b", 7, Path::new("/s"));
        let line = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("TF_REATTACH_PROVIDERS='"))
            .and_then(|l| l.strip_suffix('\''))
            .expect("reattach line");
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["example.com/a/b"]["Pid"], 7);
    }
}
