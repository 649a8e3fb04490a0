//! Reading a [`NodeSpec`] from HCL or JSON with errors that name the key path
//! and the line of the offending key.
//!
//! serde_json reports line/column itself. hcl-rs does not keep positions after
//! parsing, so for HCL we record the key path with `serde_path_to_error` and
//! look that path up in a span-preserving parse of the same text (hcl-edit).

use crate::spec::NodeSpec;
use hcl_edit::expr::{Expression, ObjectKey};
use hcl_edit::structure::{Body, Structure};
use hcl_edit::Span;
use serde_path_to_error::Segment;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Hcl,
    Json,
}

impl Format {
    /// By extension; anything else is sniffed from the content.
    pub fn detect(name: &str, content: &str) -> Format {
        if name.ends_with(".json") {
            Format::Json
        } else if name.ends_with(".hcl") {
            Format::Hcl
        } else if content.trim_start().starts_with('{') {
            // A JSON spec is always an object; an HCL body never starts with '{'.
            Format::Json
        } else {
            Format::Hcl
        }
    }
}

/// A spec that could not be read. `key` is the dotted path of the offending
/// key (keys containing dots are quoted), `line`/`column` are 1-based.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    pub key: Option<String>,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(l) = self.line {
            write!(f, "line {l}")?;
            if let Some(c) = self.column {
                write!(f, ", column {c}")?;
            }
            f.write_str(": ")?;
        }
        if let Some(k) = &self.key {
            write!(f, "key `{k}`: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for SpecError {}

pub fn parse_spec(content: &str, format: Format) -> Result<NodeSpec, SpecError> {
    match format {
        Format::Json => parse_json(content),
        Format::Hcl => parse_hcl(content),
    }
}

fn key_path(path: &serde_path_to_error::Path) -> (Vec<String>, Option<String>) {
    let segs: Vec<String> = path
        .iter()
        .filter_map(|s| match s {
            Segment::Map { key } => Some(key.clone()),
            Segment::Seq { index } => Some(index.to_string()),
            Segment::Enum { variant } => Some(variant.clone()),
            Segment::Unknown => None,
        })
        .collect();
    let dotted = segs
        .iter()
        .map(|s| if s.contains('.') || s.contains('/') { format!("{s:?}") } else { s.clone() })
        .collect::<Vec<_>>()
        .join(".");
    (segs, (!dotted.is_empty()).then_some(dotted))
}

pub fn parse_json(content: &str) -> Result<NodeSpec, SpecError> {
    let mut de = serde_json::Deserializer::from_str(content);
    let spec: NodeSpec = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let (_, key) = key_path(e.path());
        let inner = e.inner();
        let (line, column) = (inner.line(), inner.column());
        // serde_json appends " at line L column C"; we print the position ourselves.
        let msg = inner.to_string();
        let suffix = format!(" at line {line} column {column}");
        let message = msg.strip_suffix(&suffix).unwrap_or(&msg).to_string();
        SpecError { key, line: (line > 0).then_some(line), column: (line > 0).then_some(column), message }
    })?;
    de.end().map_err(|e| SpecError {
        key: None,
        line: Some(e.line()),
        column: Some(e.column()),
        message: "trailing characters after the spec object".into(),
    })?;
    semantics(spec, |_| None)
}

/// [`NodeSpec::check`] as a [`SpecError`]; `locate` gives the line and column of a key path.
fn semantics(spec: NodeSpec, locate: impl Fn(&[String]) -> Option<(usize, usize)>) -> Result<NodeSpec, SpecError> {
    match spec.check() {
        Ok(()) => Ok(spec),
        Err((segs, message)) => {
            let pos = locate(&segs);
            let key = segs
                .iter()
                .map(|s| if s.contains('.') || s.contains('/') { format!("{s:?}") } else { s.clone() })
                .collect::<Vec<_>>()
                .join(".");
            Err(SpecError { key: Some(key), line: pos.map(|p| p.0), column: pos.map(|p| p.1), message })
        }
    }
}

pub fn parse_hcl(content: &str) -> Result<NodeSpec, SpecError> {
    let syntax = |e: hcl_edit::parser::Error| SpecError {
        key: None,
        line: Some(e.location().line()),
        column: Some(e.location().column()),
        message: format!("HCL syntax error: {}", e.message()),
    };
    // Parse with spans first: a syntax error is reported from here with position.
    let body = hcl_edit::parser::parse_body(content).map_err(syntax)?;
    let de = hcl::de::Deserializer::from_str(content).map_err(|e| match e {
        hcl::Error::Parse(p) => syntax(p),
        other => SpecError { key: None, line: None, column: None, message: other.to_string() },
    })?;
    let spec = serde_path_to_error::deserialize::<_, NodeSpec>(de).map_err(|e| {
        let (segs, key) = key_path(e.path());
        let offset = locate(&body, &segs);
        let (line, column) = match offset {
            Some(o) => {
                let (l, c) = line_col(content, o);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        SpecError { key, line, column, message: e.inner().to_string() }
    })?;
    semantics(spec, |segs| locate(&body, segs).map(|o| line_col(content, o)))
}

/// 1-based line and column of a byte offset.
pub fn line_col(content: &str, offset: usize) -> (usize, usize) {
    let before = &content[..offset.min(content.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Byte offset of the deepest element of `path` that exists in `body`.
/// Blocks consume their labels as path segments (`package "x" {}` is
/// `package.x`), object expressions consume their keys.
fn locate(body: &Body, path: &[String]) -> Option<usize> {
    let (first, rest) = path.split_first()?;
    let mut best = None;
    for s in body.iter() {
        match s {
            Structure::Attribute(a) if a.key.as_str() == first.as_str() => {
                let here = a.key.span().map(|r| r.start);
                return locate_expr(&a.value, rest).or(here);
            }
            Structure::Block(b) if b.ident.as_str() == first.as_str() => {
                let here = b.ident.span().map(|r| r.start);
                let n = b.labels.len();
                if rest.len() < n {
                    best = best.or(here);
                    continue;
                }
                if b.labels.iter().zip(rest).all(|(l, p)| l.as_str() == p.as_str()) {
                    let label_pos = b.labels.last().and_then(|l| l.span()).map(|r| r.start);
                    return locate(&b.body, &rest[n..]).or(label_pos).or(here);
                }
                best = best.or(here);
            }
            _ => {}
        }
    }
    best
}

fn locate_expr(expr: &Expression, path: &[String]) -> Option<usize> {
    let (first, rest) = path.split_first()?;
    match expr {
        Expression::Object(obj) => obj.iter().find_map(|(k, v)| {
            let (name, span) = match k {
                ObjectKey::Ident(i) => (i.as_str().to_string(), i.span()),
                ObjectKey::Expression(Expression::String(s)) => (s.value().to_string(), s.span()),
                ObjectKey::Expression(_) => return None,
            };
            (name == *first).then(|| locate_expr(v.expr(), rest).or(span.map(|r| r.start)))?
        }),
        Expression::Array(arr) => {
            let i: usize = first.parse().ok()?;
            let e = arr.iter().nth(i)?;
            locate_expr(e, rest).or(e.span().map(|r| r.start))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hcl_unknown_key_in_labeled_nested_block_names_key_and_line() {
        let src = "containerd {\n  version = 2\n  registry_mirror \"docker.io\" {\n    endpoints = []\n    bogus = 1\n  }\n}\n";
        let e = parse_hcl(src).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("containerd.registry_mirror.\"docker.io\".bogus"));
        assert_eq!(e.line, Some(5));
        assert!(e.message.contains("unknown field `bogus`"), "{e}");
    }

    #[test]
    fn hcl_wrong_type_points_at_attribute() {
        let src = "swap_off = true\n\nkubelet {\n  cluster_domain = \"x\"\n  rotate_certificates = \"yes\"\n}\n";
        let e = parse_hcl(src).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("kubelet.rotate_certificates"));
        assert_eq!(e.line, Some(5));
    }

    #[test]
    fn hcl_picks_the_block_with_matching_label() {
        let src = "package \"a\" {\n  version = \"1\"\n}\npackage \"b\" {\n  hold = true\n  vrsion = \"2\"\n}\n";
        let e = parse_hcl(src).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("package.b.vrsion"));
        assert_eq!(e.line, Some(6));
    }

    #[test]
    fn hcl_bad_value_inside_object_attribute() {
        let src = "file \"/etc/x\" {\n  content = \"\"\n  mode = \"999\"\n}\n";
        let e = parse_hcl(src).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("file.\"/etc/x\".mode"));
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("invalid mode"));
        let src = "directory \"etc/rel\" {\n}\n";
        let e = parse_hcl(src).unwrap_err();
        assert!(e.message.contains("must be absolute"), "{e}");
        assert_eq!(e.line, Some(1));
    }

    #[test]
    fn hcl_syntax_error_has_position() {
        let e = parse_hcl("swap_off = true\nkernel_modules = [\n").unwrap_err();
        assert!(e.line.is_some());
        assert!(e.message.starts_with("HCL syntax error"));
    }

    #[test]
    fn json_unknown_key_names_key_and_line() {
        let src =
            "{\n  \"swap_off\": true,\n  \"crictl\": {\n    \"runtime_endpoint\": \"x\",\n    \"nope\": 1\n  }\n}";
        let e = parse_json(src).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("crictl.nope"));
        assert_eq!(e.line, Some(5));
        assert!(e.message.contains("unknown field `nope`"));
        assert!(!e.message.contains("at line"), "position printed twice: {e}");
    }

    #[test]
    fn hcl_apt_blocks_and_service_masked() {
        let src = r#"
apt {
  lists_max_age = 600
}
apt_repository "kubernetes" {
  uris   = ["https://pkgs.k8s.io/core:/stable:/v1.35/deb/"]
  suites = ["/"]
  key    = "-----BEGIN PGP PUBLIC KEY BLOCK-----"
}
package "kubelet" {
  version           = "1.35.0-1.1"
  allow_change_held = true
}
service "kubelet" {
  masked = false
}
"#;
        let s = parse_hcl(src).unwrap();
        assert_eq!(s.apt.as_ref().map(|a| (a.lists_max_age, a.lock_timeout)), Some((600, 120)));
        assert_eq!(s.apt_repository["kubernetes"].suites, vec!["/"]);
        assert!(s.package["kubelet"].allow_change_held);
        assert_eq!(s.service["kubelet"].masked, Some(false));
        let e = parse_hcl("apt_repository \"x\" {\n  uris = []\n  suites = []\n  trusted = \"yes\"\n}\n").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("apt_repository.x.trusted"));
        assert_eq!(e.line, Some(4));
        // Rules across fields are spec errors too, with the key and its line.
        let e = parse_hcl("apt_repository \"x\" {\n  uris = [\"http://m\"]\n  suites = [\"bookworm\"]\n  components = [\"main\"]\n  key = \"-----BEGIN PGP PUBLIC KEY BLOCK-----\"\n  trusted = true\n}\n").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("apt_repository.x.trusted"), "{e}");
        assert_eq!(e.line, Some(6));
        let e = parse_json(r#"{"service": {"kubelet": {"masked": true, "running": true}}}"#).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("service.kubelet.masked"));
        assert!(e.message.contains("conflicts"), "{e}");
    }

    #[test]
    fn format_detection() {
        assert_eq!(Format::detect("x.json", "a = 1"), Format::Json);
        assert_eq!(Format::detect("-", "  {\"a\":1}"), Format::Json);
        assert_eq!(Format::detect("-", "swap_off = true"), Format::Hcl);
    }

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
    }
}
