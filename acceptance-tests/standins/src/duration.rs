//! Go `time.Duration` strings (`24h0m0s`, `1h`, `90m`, `1.5h`) as kubeadm's `ttl` uses them.
//! No crate in the workspace parses Go's syntax exactly; it is small and fixed.

use std::time::Duration;

use anyhow::{bail, Result};

pub fn parse_go_duration(s: &str) -> Result<Duration> {
    let mut rest = s.trim();
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        bail!("time: invalid duration {s:?}");
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if num_end == 0 {
            bail!("time: invalid duration {s:?}");
        }
        let n: f64 = rest[..num_end].parse().map_err(|_| anyhow::anyhow!("time: invalid duration {s:?}"))?;
        rest = &rest[num_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let secs = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => bail!("time: missing unit in duration {s:?}"),
            u => bail!("time: unknown unit {u:?} in duration {s:?}"),
        };
        total += n * secs;
        rest = &rest[unit_end..];
    }
    Ok(Duration::from_secs_f64(total))
}

/// Formats like Go's `Duration.String()` for whole seconds (`24h0m0s`).
pub fn format_go_duration(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}h{}m{}s", s / 3600, (s % 3600) / 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("24h0m0s").unwrap(), Duration::from_secs(86400));
        assert_eq!(parse_go_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_go_duration("1.5h").unwrap(), Duration::from_secs(5400));
        assert!(parse_go_duration("1 hour").is_err());
        assert!(parse_go_duration("10").is_err());
        assert_eq!(format_go_duration(Duration::from_secs(3600)), "1h0m0s");
    }
}
