//! `strata-cri`: a CRI **test client**, NOT a stand-in for anything a cluster runs. Debian
//! 12 has no `crictl`, and the air-gapped image tests need to ask the node's real
//! containerd, through the CRI API as the kubelet does, to pull an image (through the
//! registry mirror the node is configured with), list images and show the runtime's
//! configuration. The commands and their output follow crictl's:
//!
//! ```text
//! strata-cri [--runtime-endpoint unix:///run/containerd/containerd.sock] pull IMAGE
//! strata-cri images [-o table|json] [IMAGE]
//! strata-cri inspecti IMAGE
//! strata-cri info
//! strata-cri version
//! ```
//!
//! `pull` prints `Image is up to date for <image id>`; on failure it prints crictl's klog
//! line `E<date> <pid> remote_image.go:180] "PullImage from image service failed"
//! err="<the runtime's error, Go-quoted>" image="IMAGE"` and then the runtime's error
//! unquoted and whole (`FATA[0000] pulling image: rpc error: code = … desc = …`), and
//! exits 1. `info` prints `{"status": {"conditions": […]}, <each key of the runtime's
//! verbose info, parsed as JSON>}` (containerd: `.config.sandboxImage`, `.config.registry`).

use std::time::Duration;

use anyhow::{bail, Result};
use clap::{Parser, Subcommand, ValueEnum};
use serde_json::{json, Map, Value};

use crate::cri::{pb, Runtime};

pub const DEFAULT_ENDPOINT: &str = "unix:///run/containerd/containerd.sock";

#[derive(Parser)]
#[command(name = "strata-cri", about = "CRI test client of the Strata lab (crictl-like; not a stand-in)")]
struct Cli {
    /// The CRI endpoint (also $CONTAINER_RUNTIME_ENDPOINT).
    #[arg(short = 'r', long, global = true)]
    runtime_endpoint: Option<String>,
    /// Bound in seconds on each call (a pull through a slow mirror takes a while).
    #[arg(long, default_value_t = 300, global = true)]
    timeout: u64,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Table,
    Json,
}

#[derive(Subcommand)]
enum Cmd {
    /// Pull an image through the runtime (PullImage).
    Pull { image: String },
    /// List images (ListImages).
    Images {
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
        /// Only this image.
        image: Option<String>,
    },
    /// One image's status as JSON (ImageStatus, verbose).
    Inspecti { image: String },
    /// The runtime's status and configuration as JSON (Status, verbose).
    Info,
    /// The runtime's name and versions (Version).
    Version,
}

/// Runs the command line; returns the exit code.
pub fn main(args: Vec<String>) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 1 } else { 0 };
        }
    };
    match crate::block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("FATA[0000] {e:#}");
            1
        }
    }
}

async fn run(cli: Cli) -> Result<i32> {
    let endpoint = cli
        .runtime_endpoint
        .clone()
        .or_else(|| std::env::var("CONTAINER_RUNTIME_ENDPOINT").ok().filter(|e| !e.is_empty()))
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
    let rt = Runtime::connect_with_timeout(&endpoint, Duration::from_secs(cli.timeout.max(1))).await?;
    match cli.command {
        Cmd::Pull { image } => match rt.pull_image(&image).await {
            Ok(id) => println!("Image is up to date for {id}"),
            Err(e) => {
                eprintln!("{}", pull_failure_line(&e, &image));
                eprintln!("FATA[0000] pulling image: {e}");
                return Ok(1);
            }
        },
        Cmd::Images { output, image } => {
            let images = rt.list_images(image.as_deref()).await?;
            match output {
                Output::Json => {
                    let list: Vec<Value> = images.iter().map(image_json).collect();
                    println!("{}", serde_json::to_string_pretty(&json!({ "images": list }))?);
                }
                Output::Table => print!("{}", images_table(&images)),
            }
        }
        Cmd::Inspecti { image } => {
            let r = rt.image_status(&image, true).await?;
            let Some(img) = r.image.as_ref() else {
                bail!("no such image {image:?} present");
            };
            let mut out = Map::new();
            out.insert("status".into(), image_json(img));
            // As crictl's outputStatusInfo: the info keys beside "status" (containerd's
            // one key is "info": chainID, imageSpec, ...).
            out.extend(info_json(&r.info));
            println!("{}", serde_json::to_string_pretty(&Value::Object(out))?);
        }
        Cmd::Info => {
            let r = rt.status_verbose().await?;
            println!("{}", serde_json::to_string_pretty(&status_json(&r))?);
        }
        Cmd::Version => {
            let v = rt.version().await?;
            println!("Version:  {}", v.version);
            println!("RuntimeName:  {}", v.runtime_name);
            println!("RuntimeVersion:  {}", v.runtime_version);
            println!("RuntimeApiVersion:  {}", v.runtime_api_version);
        }
    }
    Ok(0)
}

/// crictl's klog line for a failed pull (`remote_image.go`), the error Go-quoted.
fn pull_failure_line(err: &str, image: &str) -> String {
    let now = time::OffsetDateTime::now_utc();
    let stamp = format!(
        "{:02}{:02} {:02}:{:02}:{:02}.{:06}",
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.microsecond()
    );
    format!(
        "E{stamp} {:>7} remote_image.go:180] \"PullImage from image service failed\" err={} image={}",
        std::process::id(),
        go_quote(err),
        go_quote(image)
    )
}

/// Go's `%q` of a string (the escapes klog uses for values).
pub fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// An image as crictl prints it in JSON (protobuf JSON names; uint64 as a string).
fn image_json(i: &pb::Image) -> Value {
    json!({
        "id": i.id,
        "repoTags": i.repo_tags,
        "repoDigests": i.repo_digests,
        "size": i.size.to_string(),
        "uid": i.uid.as_ref().map(|u| json!({"value": u.value.to_string()})),
        "username": i.username,
        "spec": i.spec.as_ref().map(|s| json!({"image": s.image, "annotations": s.annotations})),
        "pinned": i.pinned,
    })
}

/// A verbose info map, each value parsed as JSON when it is JSON (as crictl does).
fn info_json(info: &std::collections::HashMap<String, String>) -> Map<String, Value> {
    let mut keys: Vec<&String> = info.keys().collect();
    keys.sort();
    keys.into_iter()
        .map(|k| {
            let v = &info[k];
            (k.clone(), serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.clone())))
        })
        .collect()
}

/// `crictl info`: the status conditions, then the info documents at the top level.
pub fn status_json(r: &pb::StatusResponse) -> Value {
    let conditions: Vec<Value> = r
        .status
        .iter()
        .flat_map(|s| &s.conditions)
        .map(|c| json!({"type": c.r#type, "status": c.status, "reason": c.reason, "message": c.message}))
        .collect();
    let mut out = Map::new();
    out.insert("status".into(), json!({ "conditions": conditions }));
    out.extend(info_json(&r.info));
    Value::Object(out)
}

/// crictl's `images` table: IMAGE, TAG, IMAGE ID (13 hex digits), SIZE.
fn images_table(images: &[pb::Image]) -> String {
    let mut rows = vec![["IMAGE".to_string(), "TAG".into(), "IMAGE ID".into(), "SIZE".into()]];
    for i in images {
        let id: String = i.id.trim_start_matches("sha256:").chars().take(13).collect();
        let size = human_size(i.size);
        let mut tagged = false;
        for t in &i.repo_tags {
            let (repo, tag) = split_tag(t);
            rows.push([repo.to_string(), tag.to_string(), id.clone(), size.clone()]);
            tagged = true;
        }
        if !tagged {
            let repo = i.repo_digests.first().map(|d| d.split('@').next().unwrap_or(d)).unwrap_or("<none>");
            rows.push([repo.to_string(), "<none>".into(), id.clone(), size.clone()]);
        }
    }
    let widths: Vec<usize> = (0..4).map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for r in rows {
        let line = format!(
            "{:w0$}   {:w1$}   {:w2$}   {}",
            r[0],
            r[1],
            r[2],
            r[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `registry:5000/a/b:tag` → (`registry:5000/a/b`, `tag`); a port is not a tag.
fn split_tag(reference: &str) -> (&str, &str) {
    match reference.rfind(':') {
        Some(i) if !reference[i..].contains('/') => (&reference[..i], &reference[i + 1..]),
        _ => (reference, "<none>"),
    }
}

/// Docker's HumanSizeWithPrecision(size, 3): decimal units.
fn human_size(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < units.len() {
        v /= 1000.0;
        u += 1;
    }
    // %.3g: three significant digits, trailing zeros dropped.
    let int_digits = if v < 1.0 { 1 } else { (v.log10().floor() as usize) + 1 };
    let decimals = 3usize.saturating_sub(int_digits);
    let mut s = format!("{v:.decimals$}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{s}{}", units[u])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_quoted_as_go_does() {
        assert_eq!(go_quote(r#"a "b" \c"#), r#""a \"b\" \\c""#);
        assert_eq!(go_quote("x\ny"), r#""x\ny""#);
        let line = pull_failure_line("rpc error: code = Unknown desc = failed to pull \"x\"", "x");
        assert!(line.starts_with('E'), "{line}");
        assert!(line.contains(r#"remote_image.go:180] "PullImage from image service failed" err="rpc error: code = Unknown desc = failed to pull \"x\"" image="x""#), "{line}");
    }

    #[test]
    fn references_split_at_the_tag_not_the_port() {
        assert_eq!(split_tag("registry.k8s.io/pause:3.10.1"), ("registry.k8s.io/pause", "3.10.1"));
        assert_eq!(split_tag("10.0.0.1:5000/pause"), ("10.0.0.1:5000/pause", "<none>"));
        assert_eq!(split_tag("10.0.0.1:5000/pause:3.10"), ("10.0.0.1:5000/pause", "3.10"));
    }

    #[test]
    fn the_images_table_and_json_follow_crictl() {
        let img = pb::Image {
            id: "sha256:0123456789abcdef0123".into(),
            repo_tags: vec!["registry.k8s.io/pause:3.10.1".into()],
            repo_digests: vec!["registry.k8s.io/pause@sha256:ff".into()],
            size: 1_088_214,
            ..Default::default()
        };
        let t = images_table(std::slice::from_ref(&img));
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("IMAGE"), "{t}");
        assert!(lines[1].contains("registry.k8s.io/pause") && lines[1].contains("3.10.1"), "{t}");
        assert!(lines[1].contains("0123456789abc ") && lines[1].ends_with("1.09MB"), "{t}");
        let j = image_json(&img);
        assert_eq!(j["repoDigests"][0], "registry.k8s.io/pause@sha256:ff");
        assert_eq!(j["size"], "1088214");
        assert_eq!(human_size(512), "512B");
        assert_eq!(human_size(4_400_000), "4.4MB");
    }

    #[test]
    fn info_puts_the_runtime_documents_beside_the_status() {
        let mut info = std::collections::HashMap::new();
        info.insert("config".to_string(), r#"{"sandboxImage":"registry.k8s.io/pause:3.6"}"#.to_string());
        info.insert("golang".to_string(), "go1.19".to_string());
        let r = pb::StatusResponse {
            status: Some(pb::RuntimeStatus {
                conditions: vec![pb::RuntimeCondition {
                    r#type: "RuntimeReady".into(),
                    status: true,
                    ..Default::default()
                }],
            }),
            info,
        };
        let v = status_json(&r);
        assert_eq!(v["config"]["sandboxImage"], "registry.k8s.io/pause:3.6");
        assert_eq!(v["golang"], "go1.19");
        assert_eq!(v["status"]["conditions"][0]["type"], "RuntimeReady");
    }
}
