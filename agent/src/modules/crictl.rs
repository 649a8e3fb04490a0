//! `crictl { runtime_endpoint image_endpoint timeout }` -> `/etc/crictl.yaml`.

use crate::fsutil::FileState;
use crate::spec::CrictlSpec;
use crate::task::{Change, Context, Task, TaskError};
use serde::Serialize;

pub const CONFIG: &str = "/etc/crictl.yaml";

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct CrictlConfig<'a> {
    runtime_endpoint: &'a str,
    image_endpoint: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout: Option<u32>,
}

pub fn render(spec: &CrictlSpec) -> String {
    let c = CrictlConfig {
        runtime_endpoint: &spec.runtime_endpoint,
        image_endpoint: spec.image_endpoint.as_deref().unwrap_or(&spec.runtime_endpoint),
        timeout: spec.timeout,
    };
    format!("# Managed by strata-agent.\n{}", serde_yaml_ng::to_string(&c).expect("plain struct"))
}

pub struct CrictlTask {
    pub spec: CrictlSpec,
}

impl Task for CrictlTask {
    fn name(&self) -> String {
        "crictl config".into()
    }
    fn module(&self) -> &'static str {
        "crictl"
    }
    fn check(&self, ctx: &Context) -> Result<Vec<Change>, TaskError> {
        FileState::new(CONFIG, render(&self.spec)).with_mode(0o644).check(&ctx.root)
    }
    fn apply(&self, ctx: &Context) -> Result<(), TaskError> {
        FileState::new(CONFIG, render(&self.spec)).with_mode(0o644).apply(&ctx.root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::testutil;
    use proptest::prelude::*;
    use serde_yaml_ng::Value;

    #[test]
    fn image_endpoint_defaults_to_runtime_endpoint() {
        let v: Value = serde_yaml_ng::from_str(&render(&CrictlSpec::default())).unwrap();
        assert_eq!(v["runtime-endpoint"].as_str(), Some("unix:///run/containerd/containerd.sock"));
        assert_eq!(v["image-endpoint"].as_str(), Some("unix:///run/containerd/containerd.sock"));
        assert!(v.get("timeout").is_none());
    }

    #[test]
    fn converges() {
        let (_d, ctx) = testutil::root();
        let t = CrictlTask { spec: CrictlSpec { timeout: Some(10), ..Default::default() } };
        assert_eq!(t.check(&ctx).unwrap().len(), 1);
        t.apply(&ctx).unwrap();
        assert!(t.check(&ctx).unwrap().is_empty());
    }

    proptest! {
        #[test]
        fn any_endpoint_roundtrips(ep in ".{0,40}", t in proptest::option::of(any::<u32>())) {
            let v: Value = serde_yaml_ng::from_str(&render(&CrictlSpec { runtime_endpoint: ep.clone(), image_endpoint: None, timeout: t })).unwrap();
            prop_assert_eq!(v["runtime-endpoint"].as_str(), Some(ep.as_str()));
            prop_assert_eq!(v.get("timeout").and_then(Value::as_u64), t.map(u64::from));
        }
    }
}
