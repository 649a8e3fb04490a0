//! The kubelet's validation of its KubeletConfiguration
//! (`pkg/kubelet/apis/config/validation/validation.go`, ValidateKubeletConfiguration), for
//! the numeric and enumerated fields, after the `kubelet.config.k8s.io/v1beta1` defaults
//! (`pkg/kubelet/apis/config/v1beta1/defaults.go`). Each error has upstream's text; the
//! kubelet refuses to start with them aggregated (`[a, b]` for several, as
//! utilerrors.NewAggregate prints).
//!
//! Not checked (they depend on feature gates, cgroups or the node): cpuCFSQuotaPeriod,
//! image GC ages, shutdown grace periods, reserved resources, eviction thresholds,
//! crashLoopBackOff, logging, tracing. An unknown `cgroupDriver` is not an error upstream
//! either (anything but `systemd` is driven as cgroupfs).

use serde_json::Value;

/// A field as the kubelet sees it after defaulting: `pointer` fields (`*int32` in the
/// v1beta1 type) keep an explicit 0; plain ones get their default for 0 or absence.
fn num(cfg: &Value, key: &str, default: f64, pointer: bool) -> f64 {
    match cfg.get(key).and_then(Value::as_f64) {
        Some(v) if pointer || v != 0.0 => v,
        _ => default,
    }
}

/// Go's `%v` of a number (integers without a fraction).
fn g(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

pub fn validate(cfg: &Value) -> Vec<String> {
    let mut e = Vec::new();
    let mut err = |s: String| e.push(format!("invalid configuration: {s}"));
    let in_range = |v: f64, lo: f64, hi: f64| (lo..=hi).contains(&v);
    let port_ok = |v: f64| in_range(v, 1.0, 65535.0);

    if num(cfg, "nodeLeaseDurationSeconds", 40.0, false) <= 0.0 {
        err("nodeLeaseDurationSeconds must be greater than 0".into());
    }
    let event_burst = num(cfg, "eventBurst", 100.0, false);
    if event_burst < 0.0 {
        err(format!("eventBurst (--event-burst) {} must not be a negative number", g(event_burst)));
    }
    let event_qps = num(cfg, "eventRecordQPS", 50.0, true);
    if event_qps < 0.0 {
        err(format!("eventRecordQPS (--event-qps) {} must not be a negative number", g(event_qps)));
    }
    let healthz = num(cfg, "healthzPort", 10248.0, true);
    if healthz != 0.0 && !port_ok(healthz) {
        err(format!("healthzPort (--healthz-port) {} must be between 1 and 65535, inclusive", g(healthz)));
    }
    let high = num(cfg, "imageGCHighThresholdPercent", 85.0, true);
    let low = num(cfg, "imageGCLowThresholdPercent", 80.0, true);
    if !in_range(high, 0.0, 100.0) {
        err(format!(
            "imageGCHighThresholdPercent (--image-gc-high-threshold) {} must be between 0 and 100, inclusive",
            g(high)
        ));
    }
    if !in_range(low, 0.0, 100.0) {
        err(format!(
            "imageGCLowThresholdPercent (--image-gc-low-threshold) {} must be between 0 and 100, inclusive",
            g(low)
        ));
    }
    if low >= high {
        err(format!("imageGCLowThresholdPercent (--image-gc-low-threshold) {} must be less than imageGCHighThresholdPercent (--image-gc-high-threshold) {}", g(low), g(high)));
    }
    for (key, flag, default) in
        [("iptablesDropBit", "iptables-drop-bit", 15.0), ("iptablesMasqueradeBit", "iptables-masquerade-bit", 14.0)]
    {
        let v = num(cfg, key, default, true);
        if !in_range(v, 0.0, 31.0) {
            err(format!("{key} (--{flag}) {} must be between 0 and 31, inclusive", g(v)));
        }
    }
    for (key, flag, default, pointer) in
        [("kubeAPIBurst", "kube-api-burst", 100.0, false), ("kubeAPIQPS", "kube-api-qps", 50.0, true)]
    {
        let v = num(cfg, key, default, pointer);
        if v < 0.0 {
            err(format!("{key} (--{flag}) {} must not be a negative number", g(v)));
        }
    }
    let max_images = num(cfg, "nodeStatusMaxImages", 50.0, true);
    if max_images < -1.0 {
        err(format!("nodeStatusMaxImages (--node-status-max-images) {} must be -1 or greater", g(max_images)));
    }
    for (key, flag, default) in [("maxOpenFiles", "max-open-files", 1_000_000.0), ("maxPods", "max-pods", 110.0)] {
        let v = num(cfg, key, default, false);
        if v < 0.0 {
            err(format!("{key} (--{flag}) {} must not be a negative number", g(v)));
        }
    }
    let oom = num(cfg, "oomScoreAdj", -999.0, true);
    if !in_range(oom, -1000.0, 1000.0) {
        err(format!("oomScoreAdj (--oom-score-adj) {} must be between -1000 and 1000, inclusive", g(oom)));
    }
    let per_core = num(cfg, "podsPerCore", 0.0, false);
    if per_core < 0.0 {
        err(format!("podsPerCore (--pods-per-core) {} must not be a negative number", g(per_core)));
    }
    let port = num(cfg, "port", 10250.0, false);
    if !port_ok(port) {
        err(format!("port (--port) {} must be between 1 and 65535, inclusive", g(port)));
    }
    let ro = num(cfg, "readOnlyPort", 0.0, false);
    if ro != 0.0 && !port_ok(ro) {
        err(format!("readOnlyPort (--read-only-port) {} must be between 0 and 65535, inclusive", g(ro)));
    }
    let burst = num(cfg, "registryBurst", 10.0, false);
    if burst < 0.0 {
        err(format!("registryBurst (--registry-burst) {} must not be a negative number", g(burst)));
    }
    let qps = num(cfg, "registryPullQPS", 5.0, true);
    if qps < 0.0 {
        err(format!("registryPullQPS (--registry-qps) {} must not be a negative number", g(qps)));
    }
    if let Some(n) = cfg.get("maxParallelImagePulls").and_then(Value::as_f64) {
        if n < 1.0 {
            err(format!("maxParallelImagePulls {} must be a positive number", g(n)));
        }
        if cfg.get("serializeImagePulls").and_then(Value::as_bool).unwrap_or(true) && n > 1.0 {
            err("maxParallelImagePulls cannot be larger than 1 unless SerializeImagePulls (--serialize-image-pulls) is set to false".into());
        }
    }
    if cfg.get("runOnce").and_then(Value::as_bool).unwrap_or(false) {
        err("runOnce (--runOnce) true, Runonce mode has been deprecated and should not be set".into());
    }
    let policy = cfg.get("topologyManagerPolicy").and_then(Value::as_str).unwrap_or("none");
    if !["none", "best-effort", "restricted", "single-numa-node"].contains(&policy) {
        err(format!("topologyManagerPolicy (--topology-manager-policy) {policy:?} must be one of: [\"none\" \"best-effort\" \"restricted\" \"single-numa-node\"]"));
    }
    let scope = cfg.get("topologyManagerScope").and_then(Value::as_str).unwrap_or("container");
    if !["container", "pod"].contains(&scope) {
        err(format!(
            "topologyManagerScope (--topology-manager-scope) {scope:?} must be one of: \"container\", or \"pod\""
        ));
    }
    // NodeSwap is GA (locked on) in the pinned versions.
    let swap = cfg.pointer("/memorySwap/swapBehavior").and_then(Value::as_str).unwrap_or("");
    if !["", "NoSwap", "LimitedSwap"].contains(&swap) {
        err(format!("memorySwap.swapBehavior {swap:?} must be one of: \"\", \"LimitedSwap\" or \"NoSwap\""));
    }
    e
}

/// How the kubelet reports a failed validation before exiting 1 (cmd/kubelet/app/server.go).
pub fn error_message(errs: &[String]) -> String {
    let agg = match errs {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    };
    format!("failed to validate kubelet configuration, error: {agg}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// pkg/kubelet/apis/config/validation/validation.go ValidateKubeletConfiguration, with
    /// v1beta1 defaults.go applied first (an absent or 0 plain field takes its default).
    #[test]
    fn kubelet_configuration_validated_as_upstream() {
        // What kubeadm writes, and an empty config (all defaults), pass.
        assert!(validate(&json!({"cgroupDriver": "systemd", "clusterDNS": ["10.96.0.10"], "staticPodPath": "/etc/kubernetes/manifests"})).is_empty());
        assert!(validate(&json!({})).is_empty());
        assert!(validate(&json!({"port": 0, "maxPods": 0, "nodeLeaseDurationSeconds": 0})).is_empty(), "0 = default");
        assert_eq!(
            validate(&json!({"maxPods": -1})),
            vec!["invalid configuration: maxPods (--max-pods) -1 must not be a negative number"]
        );
        assert_eq!(
            validate(&json!({"port": 70000})),
            vec!["invalid configuration: port (--port) 70000 must be between 1 and 65535, inclusive"]
        );
        assert_eq!(
            validate(&json!({"nodeLeaseDurationSeconds": -5})),
            vec!["invalid configuration: nodeLeaseDurationSeconds must be greater than 0"]
        );
        let e = validate(&json!({"imageGCHighThresholdPercent": 50, "imageGCLowThresholdPercent": 60}));
        assert_eq!(e, vec!["invalid configuration: imageGCLowThresholdPercent (--image-gc-low-threshold) 60 must be less than imageGCHighThresholdPercent (--image-gc-high-threshold) 50"]);
        let e = validate(&json!({"topologyManagerPolicy": "fastest"}));
        assert!(e[0].contains("topologyManagerPolicy (--topology-manager-policy) \"fastest\" must be one of"), "{e:?}");
        let e = validate(&json!({"memorySwap": {"swapBehavior": "UnlimitedSwap"}}));
        assert!(e[0].contains("memorySwap.swapBehavior \"UnlimitedSwap\""), "{e:?}");
        // An explicit 0 of a pointer field is kept: eventRecordQPS 0 is fine, -1 is not.
        assert!(validate(&json!({"eventRecordQPS": 0})).is_empty());
        let two = validate(&json!({"eventRecordQPS": -1, "oomScoreAdj": -1001}));
        assert_eq!(two.len(), 2);
        assert!(
            error_message(&two)
                .starts_with("failed to validate kubelet configuration, error: [invalid configuration: eventRecordQPS"),
            "{}",
            error_message(&two)
        );
        // cgroupDriver is not validated upstream.
        assert!(validate(&json!({"cgroupDriver": "banana"})).is_empty());
    }
}
