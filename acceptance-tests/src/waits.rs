//! The provider's wait records, read back from Terraform's log.
//!
//! Every pause the provider takes between two polls or retries emits one INFO event on
//! the target `strata::wait` (provider/src/wait.rs, and the Proxmox client's sleeps): its
//! kind (`what`) and how long it lasted (`us`). Run Terraform with
//! `TF_LOG_PROVIDER=INFO` and `TF_LOG_PATH=<file>` and the file holds them as
//! `<time> [INFO]  provider.terraform-provider-strata: waited: us=<micros> what=<kind> ...`
//! (Terraform relays the fields in no fixed order).

use std::collections::BTreeMap;

/// One pause of the provider.
#[derive(Debug, Clone, PartialEq)]
pub struct Wait {
    pub what: String,
    /// When it ended (seconds since midnight UTC, from the line's timestamp).
    pub end: f64,
    /// How long it lasted.
    pub seconds: f64,
}

impl Wait {
    pub fn start(&self) -> f64 {
        self.end - self.seconds
    }
}

/// The waits of one kind (or of all kinds) added up.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitTotal {
    pub what: String,
    pub count: usize,
    /// Summed over every operation, also those running at the same time: can exceed
    /// the wall time of the command.
    pub seconds: f64,
    /// Wall time during which at least one of these waits was in progress.
    pub wall: f64,
}

/// The wait records in a Terraform log file (lines that are not one are skipped).
pub fn parse(log: &str) -> Vec<Wait> {
    log.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Wait> {
    // The provider's lines: `<ts> [INFO]  provider.terraform-provider-strata: waited: k=v ...`.
    let rest = line.split_once("terraform-provider-strata: waited:")?.1;
    let what = field(rest, "what")?;
    let us: u64 = field(rest, "us")?.parse().ok()?;
    let end = crate::platform::utc_seconds(line.split_whitespace().next()?)?;
    Some(Wait { what, end, seconds: us as f64 / 1e6 })
}

/// The value of ` key=value` in hclog's text format: bare, or double-quoted with
/// backslash escapes when it has spaces.
fn field(kvs: &str, key: &str) -> Option<String> {
    let pat = format!(" {key}=");
    let at = kvs.match_indices(&pat).map(|(i, _)| i + pat.len()).next()?;
    let v = &kvs[at..];
    if let Some(quoted) = v.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = quoted.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => return Some(out),
                '\\' => out.push(chars.next()?),
                c => out.push(c),
            }
        }
        None
    } else {
        Some(v.split_whitespace().next().unwrap_or("").to_string())
    }
}

/// Per kind, most waited first; `all` first of all adds up every kind.
pub fn totals(waits: &[Wait]) -> (WaitTotal, Vec<WaitTotal>) {
    let mut by_kind: BTreeMap<&str, Vec<&Wait>> = BTreeMap::new();
    for w in waits {
        by_kind.entry(&w.what).or_default().push(w);
    }
    let total = |what: &str, ws: &[&Wait]| WaitTotal {
        what: what.to_string(),
        count: ws.len(),
        // A fold from 0.0: an empty f64 sum is -0.0.
        seconds: ws.iter().fold(0.0, |t, w| t + w.seconds),
        wall: covered(ws),
    };
    let mut kinds: Vec<WaitTotal> = by_kind.iter().map(|(k, ws)| total(k, ws)).collect();
    kinds.sort_by(|a, b| b.seconds.total_cmp(&a.seconds).then_with(|| a.what.cmp(&b.what)));
    (total("all", &waits.iter().collect::<Vec<_>>()), kinds)
}

/// The length of the union of the waits' intervals.
fn covered(waits: &[&Wait]) -> f64 {
    let mut spans: Vec<(f64, f64)> = waits.iter().map(|w| (w.start(), w.end)).collect();
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut sum = 0.0;
    let mut current: Option<(f64, f64)> = None;
    for (s, e) in spans {
        current = match current {
            Some((cs, ce)) if s <= ce => Some((cs, ce.max(e))),
            Some((cs, ce)) => {
                sum += ce - cs;
                Some((s, e))
            }
            None => Some((s, e)),
        };
    }
    sum + current.map_or(0.0, |(s, e)| e - s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = r#"2026-12-06T02:40:00.100Z [INFO]  provider: starting plugin: path=/x/terraform-provider-strata args=["/x/terraform-provider-strata"]
2026-12-06T02:40:01.000Z [INFO]  provider.terraform-provider-strata: waited: @module=provider.terraform-provider-strata us=500000 what=proxmox_task timestamp=2026-12-06T02:40:01.000Z
2026-12-06T02:40:01.250Z [INFO]  provider.terraform-provider-strata: waited: us=1000000 what=proxmox_task @module=provider.terraform-provider-strata timestamp=2026-12-06T02:40:01.250Z
2026-12-06T02:40:03.000Z [INFO]  provider.terraform-provider-strata: waited: @module=provider.terraform-provider-strata what="node object" us=200000 timestamp=2026-12-06T02:40:03.000Z
2026-12-06T02:40:04.000Z [INFO]  provider.terraform-provider-strata: adopting the running etcd cluster: members=3 whatever=1 us=7
2026-12-06T02:40:05.000Z [WARN]  provider.terraform-provider-strata: waited: what=broken us=notanumber
"#;

    #[test]
    fn wait_records_are_read_with_their_kind_length_and_end_and_other_lines_skipped() {
        let w = parse(LOG);
        assert_eq!(w.len(), 3, "{w:?}");
        assert_eq!(w[0], Wait { what: "proxmox_task".into(), end: 2.0 * 3600.0 + 40.0 * 60.0 + 1.0, seconds: 0.5 });
        assert_eq!(w[1].seconds, 1.0);
        assert_eq!(w[2].what, "node object");
        assert!((w[2].start() - (9603.0 - 0.2)).abs() < 1e-9);
    }

    #[test]
    fn totals_add_up_per_kind_and_count_overlapping_waits_once_in_the_wall_time() {
        let (all, kinds) = totals(&parse(LOG));
        // proxmox_task: 00.5-01.0 and 00.25-01.25 overlap: 1.0 s of wall, 1.5 s summed.
        assert_eq!((all.count, kinds.len()), (3, 2));
        assert!((all.seconds - 1.7).abs() < 1e-9, "{all:?}");
        assert!((all.wall - 1.2).abs() < 1e-9, "{all:?}");
        assert_eq!(kinds[0].what, "proxmox_task");
        assert_eq!(kinds[0].count, 2);
        assert!((kinds[0].seconds - 1.5).abs() < 1e-9, "{:?}", kinds[0]);
        assert!((kinds[0].wall - 1.0).abs() < 1e-9, "{:?}", kinds[0]);
        assert_eq!((kinds[1].what.as_str(), kinds[1].count), ("node object", 1));
    }

    #[test]
    fn no_records_no_time() {
        let (all, kinds) = totals(&parse("2026-12-06T02:40:00.100Z [INFO]  provider: starting plugin"));
        assert_eq!((all.count, all.seconds, all.wall, kinds.len()), (0, 0.0, 0.0, 0));
        assert!(all.seconds.is_sign_positive(), "printed as -0.0");
    }
}
