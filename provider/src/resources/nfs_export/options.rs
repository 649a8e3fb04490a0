//! Export options: one vocabulary (exports(5)'s) for both backends, checked at plan time.

/// Keywords exportfs accepts without a value (exports(5), nfs-utils 2.6).
const KERNEL_FLAGS: &[&str] = &[
    "rw",
    "ro",
    "sync",
    "async",
    "secure",
    "insecure",
    "wdelay",
    "no_wdelay",
    "hide",
    "nohide",
    "crossmnt",
    "subtree_check",
    "no_subtree_check",
    "insecure_locks",
    "no_auth_nlm",
    "secure_locks",
    "auth_nlm",
    "mp",
    "nordirplus",
    "pnfs",
    "no_pnfs",
    "security_label",
    "root_squash",
    "no_root_squash",
    "all_squash",
    "no_all_squash",
];

/// Keywords that take `=value`.
const KERNEL_VALUED: &[&str] = &["mountpoint", "mp", "fsid", "refer", "replicas", "sec", "anonuid", "anongid"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Kernel,
    Ganesha,
}

impl Backend {
    pub const NAMES: [&'static str; 2] = ["kernel", "ganesha"];
    pub fn parse(s: &str) -> Option<Backend> {
        match s {
            "kernel" => Some(Backend::Kernel),
            "ganesha" => Some(Backend::Ganesha),
            _ => None,
        }
    }
}

/// Why an option is refused, or Ok. Values are checked only where the keyword's syntax
/// is fixed; exportfs has the last word on the rest (and its message is reported).
pub fn check(option: &str, backend: Backend) -> Result<(), String> {
    if option.is_empty() || option.contains([',', '(', ')', ' ', '\t', '\n', '"', '#']) {
        return Err(format!("{option:?} is not a single export option (no commas, spaces, parentheses or quotes)"));
    }
    let (key, value) = match option.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (option, None),
    };
    match value {
        None if !KERNEL_FLAGS.contains(&key) => {
            return Err(if KERNEL_VALUED.contains(&key) {
                format!("export option {key:?} needs a value ({key}=...)")
            } else {
                format!("unknown export option {key:?}")
            })
        }
        Some(_) if !KERNEL_VALUED.contains(&key) => {
            return Err(format!("unknown export option {key:?} (or it takes no value)"))
        }
        _ => {}
    }
    if backend == Backend::Ganesha && ganesha_line(option).is_none() && !GANESHA_NOOPS.contains(&option) {
        return Err(format!("export option {option:?} has no equivalent in the ganesha backend"));
    }
    Ok(())
}

/// Kernel options that describe kernel-server behaviour ganesha has no knob for (and does
/// not need): accepted so one client list serves both backends.
const GANESHA_NOOPS: &[&str] = &["sync", "no_subtree_check", "subtree_check", "no_all_squash", "wdelay", "no_wdelay"];

/// The ganesha CLIENT-block line an option stands for.
pub fn ganesha_line(option: &str) -> Option<String> {
    let line = match option {
        "rw" => "Access_Type = RW;".to_string(),
        "ro" => "Access_Type = RO;".to_string(),
        "root_squash" => "Squash = Root_Squash;".to_string(),
        "no_root_squash" => "Squash = No_Root_Squash;".to_string(),
        "all_squash" => "Squash = All_Squash;".to_string(),
        "secure" => "PrivilegedPort = true;".to_string(),
        "insecure" => "PrivilegedPort = false;".to_string(),
        "async" => "Sync = false;".to_string(),
        _ => match option.split_once('=') {
            Some(("anonuid", v)) if v.parse::<i64>().is_ok() => format!("Anonymous_Uid = {v};"),
            Some(("anongid", v)) if v.parse::<i64>().is_ok() => format!("Anonymous_Gid = {v};"),
            Some(("sec", v)) if v.split(':').all(|f| ["sys", "krb5", "krb5i", "krb5p", "none"].contains(&f)) => {
                format!("SecType = {};", v.replace(':', ", "))
            }
            _ => return None,
        },
    };
    Some(line)
}

/// The option a ganesha CLIENT-block line came from (for reading a file back).
pub fn option_from_ganesha_line(line: &str) -> Option<String> {
    let (k, v) = line.trim().trim_end_matches(';').split_once('=')?;
    let (k, v) = (k.trim(), v.trim());
    let opt = match (k, v) {
        ("Access_Type", "RW") => "rw".into(),
        ("Access_Type", "RO") => "ro".into(),
        ("Squash", "Root_Squash") => "root_squash".into(),
        ("Squash", "No_Root_Squash") => "no_root_squash".into(),
        ("Squash", "All_Squash") => "all_squash".into(),
        ("PrivilegedPort", "true") => "secure".into(),
        ("PrivilegedPort", "false") => "insecure".into(),
        ("Sync", "false") => "async".into(),
        ("Anonymous_Uid", v) => format!("anonuid={v}"),
        ("Anonymous_Gid", v) => format!("anongid={v}"),
        ("SecType", v) => format!("sec={}", v.replace(", ", ":")),
        _ => return None,
    };
    Some(opt)
}

/// Options of exports(5) that contradict each other (the later one would silently win).
const OPPOSITES: &[(&str, &str)] = &[
    ("rw", "ro"),
    ("sync", "async"),
    ("secure", "insecure"),
    ("wdelay", "no_wdelay"),
    ("hide", "nohide"),
    ("subtree_check", "no_subtree_check"),
    ("secure_locks", "insecure_locks"),
    ("auth_nlm", "no_auth_nlm"),
    ("secure_locks", "no_auth_nlm"),
    ("auth_nlm", "insecure_locks"),
    ("pnfs", "no_pnfs"),
    ("root_squash", "no_root_squash"),
    ("all_squash", "no_all_squash"),
];

/// ganesha has one `Squash` setting: these cannot be combined there.
const GANESHA_SQUASH: &[&str] = &["root_squash", "no_root_squash", "all_squash"];

/// Pairs of options in one client's list that contradict each other, as (index of the
/// later one, message naming both).
pub fn conflicts(options: &[&str], backend: Backend) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (j, b) in options.iter().enumerate() {
        for a in &options[..j] {
            let key = |o: &str| o.split_once('=').map(|(k, _)| k.to_string());
            let opposite = OPPOSITES.iter().any(|(x, y)| (a == x && b == y) || (a == y && b == x));
            let squash =
                backend == Backend::Ganesha && a != b && GANESHA_SQUASH.contains(a) && GANESHA_SQUASH.contains(b);
            // The same keyword twice with different values, e.g. anonuid=1 and anonuid=2.
            let revalued = a != b && key(a).is_some() && key(a) == key(b);
            if opposite || squash || revalued {
                found.push((j, format!("export options {a:?} and {b:?} contradict each other: keep one of them")));
            }
        }
    }
    found
}

/// A client spec: a host name, an IP address, a CIDR network, a wildcard or netgroup.
pub fn check_client(client: &str) -> Result<(), String> {
    let ok = !client.is_empty()
        && client.len() <= 255
        && client.chars().all(|c| c.is_ascii_alphanumeric() || "._-*?/:@[]".contains(c));
    if !ok {
        return Err(format!("{client:?} is not a host, address, network (CIDR), wildcard or @netgroup"));
    }
    if let Some((addr, bits)) = client.split_once('/') {
        let max = if addr.contains(':') { 128 } else { 32 };
        let valid_addr = addr.parse::<std::net::IpAddr>().is_ok();
        let valid_bits = bits.parse::<u8>().is_ok_and(|b| b <= max) || bits.parse::<std::net::Ipv4Addr>().is_ok();
        if !valid_addr || !valid_bits {
            return Err(format!("{client:?} is not a valid network: use ADDRESS/PREFIX, e.g. 10.0.0.0/24"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_vocabulary() {
        for ok in ["rw", "sync", "no_subtree_check", "anonuid=1000", "sec=sys:krb5", "fsid=0", "no_root_squash"] {
            assert_eq!(check(ok, Backend::Kernel), Ok(()), "{ok}");
        }
        assert!(check("bogus", Backend::Kernel).unwrap_err().contains("unknown export option \"bogus\""));
        assert!(check("rw,sync", Backend::Kernel).is_err());
        assert!(check("anonuid", Backend::Kernel).unwrap_err().contains("needs a value"));
        assert!(check("rw=1", Backend::Kernel).is_err());
    }

    #[test]
    fn ganesha_accepts_what_it_can_express() {
        for ok in ["rw", "ro", "no_root_squash", "sync", "anonuid=65534", "sec=sys"] {
            assert_eq!(check(ok, Backend::Ganesha), Ok(()), "{ok}");
        }
        assert!(check("crossmnt", Backend::Ganesha).unwrap_err().contains("ganesha"));
        assert!(check("anonuid=abc", Backend::Ganesha).is_err());
    }

    #[test]
    fn ganesha_lines_read_back_to_the_same_option() {
        for opt in [
            "rw",
            "ro",
            "root_squash",
            "no_root_squash",
            "all_squash",
            "secure",
            "insecure",
            "async",
            "anonuid=1",
            "anongid=2",
            "sec=sys:krb5",
        ] {
            let line = ganesha_line(opt).unwrap();
            assert_eq!(option_from_ganesha_line(&line).as_deref(), Some(opt), "{line}");
        }
    }

    #[test]
    fn contradictory_options_are_found_naming_both() {
        let c = conflicts(&["rw", "sync", "ro"], Backend::Kernel);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].0, 2);
        assert!(c[0].1.contains("\"rw\"") && c[0].1.contains("\"ro\""), "{}", c[0].1);
        for (a, b) in
            [("sync", "async"), ("root_squash", "no_root_squash"), ("secure", "insecure"), ("anonuid=1", "anonuid=2")]
        {
            assert_eq!(conflicts(&[a, b], Backend::Kernel).len(), 1, "{a} {b}");
        }
        assert!(conflicts(&["rw", "sync", "no_subtree_check", "all_squash", "root_squash"], Backend::Kernel).is_empty());
        assert_eq!(conflicts(&["all_squash", "root_squash"], Backend::Ganesha).len(), 1);
    }

    #[test]
    fn clients() {
        for ok in ["10.0.0.0/24", "node1", "*.example.com", "@trusted", "fd00::/64", "10.1.2.3"] {
            assert_eq!(check_client(ok), Ok(()), "{ok}");
        }
        for bad in ["10.0.0.0/33", "300.1.1.1/8", "a b", "", "x(rw)"] {
            assert!(check_client(bad).is_err(), "{bad}");
        }
    }
}
