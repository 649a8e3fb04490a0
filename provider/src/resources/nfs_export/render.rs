//! The files Strata writes on the NFS server, and reading them back to detect drift.
//! Files are written in one canonical form; reading accepts that form (and hand edits
//! that stay within it) and reports anything else as unreadable, which shows as drift.

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Client {
    pub client: String,
    pub options: Vec<String>,
}

/// What one export file says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportFile {
    pub path: String,
    /// ganesha only.
    pub pseudo_path: Option<String>,
    /// ganesha only.
    pub export_id: Option<i64>,
    pub clients: Vec<Client>,
}

fn header(name: &str) -> String {
    format!(
        "# Managed by Strata (strata_nfs_export {name:?}). Hand edits show as drift and are overwritten on apply.\n"
    )
}

/// `/etc/exports.d/strata-NAME.exports`: one line, `"PATH" CLIENT(OPTS) ...`.
pub fn kernel(name: &str, e: &ExportFile) -> String {
    let clients: Vec<String> = e.clients.iter().map(|c| format!("{}({})", c.client, c.options.join(","))).collect();
    format!("{}\"{}\" {}\n", header(name), e.path, clients.join(" "))
}

pub fn parse_kernel(text: &str) -> Option<ExportFile> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'));
    let line = lines.next()?;
    if lines.next().is_some() {
        return None;
    }
    let (path, rest) = if let Some(stripped) = line.strip_prefix('"') {
        let end = stripped.find('"')?;
        (stripped[..end].to_string(), &stripped[end + 1..])
    } else {
        let (p, r) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        (p.to_string(), r)
    };
    let mut clients = Vec::new();
    for token in rest.split_whitespace() {
        let (client, options) = match token.split_once('(') {
            Some((c, opts)) => {
                let opts = opts.strip_suffix(')')?;
                (c.to_string(), opts.split(',').filter(|o| !o.is_empty()).map(str::to_string).collect())
            }
            None => (token.to_string(), Vec::new()),
        };
        clients.push(Client { client, options });
    }
    Some(ExportFile { path, pseudo_path: None, export_id: None, clients })
}

/// One ganesha EXPORT block. Unmatched clients get no access (`Access_Type = None`).
pub fn ganesha(name: &str, e: &ExportFile) -> String {
    let mut s = header(name);
    s.push_str("EXPORT {\n");
    s.push_str(&format!("    Export_Id = {};\n", e.export_id.unwrap_or_default()));
    s.push_str(&format!("    Path = \"{}\";\n", e.path));
    s.push_str(&format!("    Pseudo = \"{}\";\n", e.pseudo_path.as_deref().unwrap_or(&e.path)));
    s.push_str("    Protocols = 4;\n    Transports = TCP;\n    Access_Type = None;\n");
    s.push_str("    FSAL {\n        Name = VFS;\n    }\n");
    for c in &e.clients {
        s.push_str("    CLIENT {\n");
        s.push_str(&format!("        Clients = {};\n", c.client));
        for o in &c.options {
            match super::options::ganesha_line(o) {
                Some(line) => s.push_str(&format!("        {line}\n")),
                // Kernel-only options with no ganesha meaning are kept as comments so
                // reading the file back gives the same option list.
                None => s.push_str(&format!("        # option {o}\n")),
            }
        }
        s.push_str("    }\n");
    }
    s.push_str("}\n");
    s
}

pub fn parse_ganesha(text: &str) -> Option<ExportFile> {
    let mut e = ExportFile { path: String::new(), pseudo_path: None, export_id: None, clients: Vec::new() };
    let mut in_client = false;
    let mut in_fsal = false;
    let mut seen_export = false;
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || (line.starts_with('#') && !in_client) {
            continue;
        }
        match line {
            "EXPORT {" if !seen_export => seen_export = true,
            "CLIENT {" => {
                in_client = true;
                e.clients.push(Client { client: String::new(), options: Vec::new() });
            }
            "FSAL {" => in_fsal = true,
            "}" if in_client => in_client = false,
            "}" if in_fsal => in_fsal = false,
            "}" => {}
            _ if in_fsal => {}
            _ if in_client => {
                let c = e.clients.last_mut()?;
                if let Some(opt) = line.strip_prefix("# option ") {
                    c.options.push(opt.trim().to_string());
                } else if let Some(v) = value(line, "Clients") {
                    c.client = v;
                } else {
                    c.options.push(super::options::option_from_ganesha_line(line)?);
                }
            }
            _ => {
                if let Some(v) = value(line, "Export_Id") {
                    e.export_id = Some(v.parse().ok()?);
                } else if let Some(v) = value(line, "Path") {
                    e.path = v;
                } else if let Some(v) = value(line, "Pseudo") {
                    e.pseudo_path = Some(v);
                } else if value(line, "Protocols").is_none()
                    && value(line, "Transports").is_none()
                    && value(line, "Access_Type").is_none()
                {
                    return None;
                }
            }
        }
    }
    (seen_export && !e.path.is_empty()).then_some(e)
}

fn value(line: &str, key: &str) -> Option<String> {
    let (k, v) = line.trim_end_matches(';').split_once('=')?;
    (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ExportFile {
        ExportFile {
            path: "/srv/nfs/k8s-prod".into(),
            pseudo_path: Some("/k8s-prod".into()),
            export_id: Some(101),
            clients: vec![
                Client {
                    client: "10.0.0.0/24".into(),
                    options: vec!["rw".into(), "sync".into(), "no_root_squash".into()],
                },
                Client { client: "backup".into(), options: vec!["ro".into(), "anonuid=65534".into()] },
            ],
        }
    }

    #[test]
    fn kernel_file_round_trips() {
        let mut e = sample();
        e.pseudo_path = None;
        e.export_id = None;
        let text = kernel("prod", &e);
        assert!(
            text.contains("\"/srv/nfs/k8s-prod\" 10.0.0.0/24(rw,sync,no_root_squash) backup(ro,anonuid=65534)"),
            "{text}"
        );
        assert_eq!(parse_kernel(&text), Some(e));
    }

    #[test]
    fn kernel_hand_edits_read_back() {
        let edited = "/srv/x 10.0.0.0/24(ro)\n";
        let e = parse_kernel(edited).unwrap();
        assert_eq!(e.clients[0].options, vec!["ro"]);
        assert!(parse_kernel("/a b(rw)\n/c d(rw)\n").is_none(), "two exports in one file is not ours");
    }

    #[test]
    fn ganesha_block_round_trips() {
        let e = sample();
        let text = ganesha("prod", &e);
        assert!(text.contains("Squash = No_Root_Squash;"));
        assert!(text.contains("Pseudo = \"/k8s-prod\";"));
        assert_eq!(parse_ganesha(&text), Some(e));
    }

    #[test]
    fn ganesha_unknown_lines_are_drift() {
        let text = ganesha("prod", &sample()).replace("Access_Type = RO;", "Access_Type = MDONLY;");
        assert!(parse_ganesha(&text).is_none());
        let text = ganesha("prod", &sample()).replace("Access_Type = RO;", "Access_Type = RW;");
        assert_eq!(parse_ganesha(&text).unwrap().clients[1].options[0], "rw");
    }
}
