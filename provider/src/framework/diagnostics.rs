//! Diagnostics with attribute paths, Terraform's way of pointing at the config line.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathStep {
    Attribute(String),
    Key(String),
    Index(i64),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AttributePath(pub Vec<PathStep>);

impl AttributePath {
    pub fn root(name: &str) -> AttributePath {
        AttributePath(vec![PathStep::Attribute(name.to_string())])
    }
    pub fn attr(&self, name: &str) -> AttributePath {
        let mut p = self.clone();
        p.0.push(PathStep::Attribute(name.to_string()));
        p
    }
    pub fn index(&self, i: usize) -> AttributePath {
        let mut p = self.clone();
        p.0.push(PathStep::Index(i as i64));
        p
    }
    pub fn key(&self, k: &str) -> AttributePath {
        let mut p = self.clone();
        p.0.push(PathStep::Key(k.to_string()));
        p
    }
    /// Parses `a.b[0]["k"]`-style paths used by resources for convenience.
    pub fn parse(s: &str) -> AttributePath {
        let mut steps = Vec::new();
        for part in s.split('.') {
            let (name, rest) = part.split_once('[').map(|(n, r)| (n, Some(r))).unwrap_or((part, None));
            if !name.is_empty() {
                steps.push(PathStep::Attribute(name.to_string()));
            }
            if let Some(rest) = rest {
                for idx in rest.split('[') {
                    let idx = idx.trim_end_matches(']');
                    if let Ok(i) = idx.parse() {
                        steps.push(PathStep::Index(i));
                    } else {
                        steps.push(PathStep::Key(idx.trim_matches('"').to_string()));
                    }
                }
            }
        }
        AttributePath(steps)
    }
}

impl fmt::Display for AttributePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, step) in self.0.iter().enumerate() {
            match step {
                PathStep::Attribute(a) if i == 0 => write!(f, "{a}")?,
                PathStep::Attribute(a) => write!(f, ".{a}")?,
                PathStep::Key(k) => write!(f, "[{k:?}]")?,
                PathStep::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub summary: String,
    pub detail: String,
    pub attribute: Option<AttributePath>,
}

impl Diagnostic {
    pub fn error(summary: impl Into<String>, detail: impl Into<String>) -> Diagnostic {
        Diagnostic { severity: Severity::Error, summary: summary.into(), detail: detail.into(), attribute: None }
    }
    pub fn warning(summary: impl Into<String>, detail: impl Into<String>) -> Diagnostic {
        Diagnostic { severity: Severity::Warning, summary: summary.into(), detail: detail.into(), attribute: None }
    }
    pub fn at(mut self, path: AttributePath) -> Diagnostic {
        self.attribute = Some(path);
        self
    }
}

/// An ordered collection of diagnostics; an operation failed when it holds an error.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn new() -> Diagnostics {
        Diagnostics(Vec::new())
    }
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }
    pub fn error(&mut self, summary: impl Into<String>, detail: impl Into<String>) {
        self.push(Diagnostic::error(summary, detail));
    }
    pub fn attribute_error(&mut self, path: AttributePath, summary: impl Into<String>, detail: impl Into<String>) {
        self.push(Diagnostic::error(summary, detail).at(path));
    }
    pub fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(|d| d.severity == Severity::Error)
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Diagnostics {
        Diagnostics(vec![d])
    }
}

/// Any error a resource's client returns becomes one error diagnostic. Clients are
/// responsible for keeping secrets out of their error texts.
impl From<anyhow::Error> for Diagnostics {
    fn from(e: anyhow::Error) -> Diagnostics {
        let summary = e.to_string();
        let detail = e.chain().skip(1).map(|c| c.to_string()).collect::<Vec<_>>().join(": ");
        Diagnostics::from(Diagnostic::error(summary, detail))
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            match &d.attribute {
                Some(p) => writeln!(f, "{:?}: {} ({p}): {}", d.severity, d.summary, d.detail)?,
                None => writeln!(f, "{:?}: {}: {}", d.severity, d.summary, d.detail)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_and_print() {
        let p = AttributePath::parse(r#"disks[1].size_gb"#);
        assert_eq!(
            p.0,
            vec![PathStep::Attribute("disks".into()), PathStep::Index(1), PathStep::Attribute("size_gb".into())]
        );
        assert_eq!(p.to_string(), "disks[1].size_gb");
        assert_eq!(
            AttributePath::root("sysctl").key("net.ipv4.ip_forward").to_string(),
            r#"sysctl["net.ipv4.ip_forward"]"#
        );
    }

    #[test]
    fn errors_are_detected() {
        let mut d = Diagnostics::new();
        d.push(Diagnostic::warning("w", ""));
        assert!(!d.has_errors());
        d.attribute_error(AttributePath::root("x"), "bad", "very");
        assert!(d.has_errors());
    }
}
