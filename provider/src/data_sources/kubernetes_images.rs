//! `strata_kubernetes_images`: the images kubeadm uses for a Kubernetes version, from
//! an image repository, so containerd's sandbox image and the control plane's
//! `image_repository` come from one place (a mismatch makes an offline `kubeadm init`
//! fail: kubeadm#2801, kubernetes#115356). Computed locally: known at plan.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::framework::{
    Attribute, Block, Context, DataSource, Diagnostic, Diagnostics, Schema, Type, Validator, Value,
};

/// kubeadm's default `imageRepository`.
pub const DEFAULT_REPOSITORY: &str = "registry.k8s.io";

/// kubeadm's `constants.PauseVersion` for each minor it supports here
/// (cmd/kubeadm/app/constants/constants.go of that release).
const PAUSE: &[(u32, &str)] = &[(34, "3.10.1"), (35, "3.10.1"), (36, "3.10.2")];

/// The pause image kubeadm `version` expects from `repository`, or why there is none.
pub fn pause_image(version: &str, repository: &str) -> Result<String, String> {
    let minor = version
        .trim_start_matches('v')
        .split('.')
        .collect::<Vec<_>>()
        .get(..2)
        .and_then(|p| (p[0] == "1").then(|| p[1].parse::<u32>().ok()).flatten())
        .ok_or_else(|| format!("{version:?} is not a Kubernetes version (1.MINOR.PATCH)"))?;
    let (_, pause) = PAUSE.iter().find(|(m, _)| *m == minor).ok_or_else(|| {
        let known: Vec<String> = PAUSE.iter().map(|(m, _)| format!("1.{m}")).collect();
        format!("Kubernetes {version}: the pause version is known for {} only", known.join(", "))
    })?;
    Ok(format!("{}/pause:{pause}", repository.trim_end_matches('/')))
}

/// An image repository as kubeadm takes it: a registry host (with an optional port) and
/// an optional path, no scheme and no tag.
pub fn check_repository(v: &Value) -> Result<(), String> {
    let Some(s) = v.as_str() else { return Ok(()) };
    let bad = |why: &str| Err(format!("{s:?} {why}"));
    if s.contains("://") {
        return bad("must not have a scheme: kubeadm takes `host[:port][/path]`");
    }
    if s.is_empty() || s.ends_with('/') || s.contains(char::is_whitespace) || s.contains('@') {
        return bad("is not an image repository (`host[:port][/path]`)");
    }
    let (host, path) = s.split_once('/').unwrap_or((s, ""));
    if path.contains(':') || path.chars().any(|c| c.is_ascii_uppercase()) {
        return bad("has a tag or uppercase letters in its path");
    }
    if host.is_empty() || host.matches(':').count() > 1 {
        return bad("has no registry host");
    }
    Ok(())
}

pub struct KubernetesImages;

#[derive(Serialize, Deserialize, Default)]
pub struct KubernetesImagesModel {
    pub kubernetes_version: String,
    pub image_repository: Option<String>,
    pub pause: Option<String>,
    pub control_plane: Option<Vec<String>>,
}

#[async_trait]
impl DataSource for KubernetesImages {
    type Model = KubernetesImagesModel;

    fn name(&self) -> &'static str {
        "kubernetes_images"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            0,
            Block::new(
                "The images kubeadm uses for a Kubernetes version from an image repository, as `kubeadm config \
                 images list` names them: feed `pause` to `strata_node_config`'s `containerd.sandbox_image` and \
                 `image_repository` to `strata_control_plane`, so the two cannot disagree. Computed locally.",
            )
            .attribute(
                Attribute::required("kubernetes_version", Type::String)
                    .description("The control plane's `kubernetes_version`, e.g. `1.36.2`."),
            )
            .attribute(
                Attribute::optional("image_repository", Type::String)
                    .validate(Validator::Custom(check_repository))
                    .description("kubeadm's `imageRepository`, default `registry.k8s.io`."),
            )
            .attribute(Attribute::computed("pause", Type::String).description(
                "The pause (sandbox) image kubeadm expects: `<image_repository>/pause:<kubeadm's PauseVersion>`.",
            ))
            .attribute(Attribute::computed("control_plane", Type::list(Type::String)).description(
                "kube-apiserver, kube-controller-manager, kube-scheduler and kube-proxy at `v<kubernetes_version>`.",
            )),
        )
    }

    fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        if let Some(v) = config.attr("kubernetes_version").and_then(Value::as_str) {
            if let Err(e) = pause_image(v, DEFAULT_REPOSITORY) {
                diags.push(
                    Diagnostic::error("Invalid kubernetes_version", e)
                        .at(crate::framework::AttributePath::root("kubernetes_version")),
                );
            }
        }
    }

    async fn read(&self, _ctx: &Context, config: KubernetesImagesModel) -> Result<KubernetesImagesModel, Diagnostics> {
        let repo = config.image_repository.clone().unwrap_or_else(|| DEFAULT_REPOSITORY.to_string());
        let pause = pause_image(&config.kubernetes_version, &repo).map_err(|e| {
            let mut d = Diagnostics::default();
            d.push(Diagnostic::error("Invalid kubernetes_version", e));
            d
        })?;
        let tag = format!("v{}", config.kubernetes_version.trim_start_matches('v'));
        let control_plane = ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy"]
            .iter()
            .map(|c| format!("{repo}/{c}:{tag}"))
            .collect();
        Ok(KubernetesImagesModel { pause: Some(pause), control_plane: Some(control_plane), ..config })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pause_image_follows_the_version_and_the_repository() {
        assert_eq!(pause_image("1.36.2", DEFAULT_REPOSITORY).unwrap(), "registry.k8s.io/pause:3.10.2");
        assert_eq!(pause_image("1.35.0", DEFAULT_REPOSITORY).unwrap(), "registry.k8s.io/pause:3.10.1");
        assert_eq!(
            pause_image("v1.34.0", "10.0.0.5:5000/registry.k8s.io").unwrap(),
            "10.0.0.5:5000/registry.k8s.io/pause:3.10.1"
        );
        assert!(pause_image("1.20.0", DEFAULT_REPOSITORY).unwrap_err().contains("known for 1.34, 1.35, 1.36"));
        assert!(pause_image("latest", DEFAULT_REPOSITORY).is_err());
    }

    #[test]
    fn repositories_are_checked_as_kubeadm_takes_them() {
        for ok in ["registry.k8s.io", "10.0.0.5:5000/registry.k8s.io", "mirror.lan/k8s"] {
            check_repository(&Value::string(ok)).unwrap();
        }
        for bad in ["https://10.0.0.5:5000", "reg.io/pause:3.10", "reg.io/", "", "reg.io/Upper"] {
            assert!(check_repository(&Value::string(bad)).is_err(), "{bad}");
        }
    }
}
