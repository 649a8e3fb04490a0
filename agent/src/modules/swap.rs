//! `swap_off = true`: kubelet refuses to run with swap by default. Swap is
//! turned off now, commented out of /etc/fstab (so it stays off after reboot)
//! and its systemd swap units are masked (systemd's fstab generator or GPT
//! auto-discovery would otherwise re-activate it).

use crate::fsutil::{read_optional, FileState};
use crate::task::{Change, Context, Task, TaskError};

pub const FSTAB: &str = "/etc/fstab";

pub struct SwapOffTask;

fn is_swap_entry(line: &str) -> bool {
    // fstab fields: spec file vfstype options ...
    line.split_whitespace().nth(2) == Some("swap")
}

/// `fstab` with every active swap line commented out.
pub fn comment_out_swap(fstab: &str) -> String {
    let mut out = String::with_capacity(fstab.len() + 8);
    for line in fstab.split_inclusive('\n') {
        let t = line.trim_start();
        if !t.starts_with('#') && is_swap_entry(t) {
            out.push('#');
        }
        out.push_str(line);
    }
    out
}

/// Swap devices named in fstab, commented out or not.
pub fn fstab_swap_devices(fstab: &str) -> Vec<String> {
    fstab
        .lines()
        .map(|l| l.trim_start().trim_start_matches('#'))
        .filter(|l| is_swap_entry(l))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// systemd's unit name for a swap device (as `systemd-escape --path --suffix=swap`).
pub fn swap_unit_name(spec: &str) -> String {
    let path =
        [("UUID=", "by-uuid"), ("LABEL=", "by-label"), ("PARTUUID=", "by-partuuid"), ("PARTLABEL=", "by-partlabel")]
            .iter()
            .find_map(|(p, dir)| spec.strip_prefix(p).map(|v| format!("/dev/disk/{dir}/{v}")))
            .unwrap_or_else(|| spec.to_string());
    let trimmed: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    if trimmed.is_empty() {
        return "-.swap".into();
    }
    let joined = trimmed.join("/");
    let mut out = String::new();
    for (i, b) in joined.bytes().enumerate() {
        match b {
            b'/' => out.push('-'),
            b'.' if i == 0 => out.push_str("\\x2e"),
            b if b.is_ascii_alphanumeric() || b == b':' || b == b'_' || b == b'.' => out.push(b as char),
            b => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out + ".swap"
}

impl SwapOffTask {
    fn fstab(&self, ctx: &Context) -> Result<Option<String>, TaskError> {
        read_optional(&ctx.path(FSTAB))
            .map(|o| o.map(|b| String::from_utf8_lossy(&b).into_owned()))
            .map_err(|e| TaskError::new(format!("{FSTAB}: {e}")))
    }
    fn units(&self, ctx: &Context, fstab: Option<&str>) -> Result<Vec<String>, TaskError> {
        let mut devs = fstab.map(fstab_swap_devices).unwrap_or_default();
        devs.extend(ctx.sys.active_swaps().map_err(TaskError::new)?);
        let mut units: Vec<String> = devs.iter().map(|d| swap_unit_name(d)).collect();
        units.sort();
        units.dedup();
        Ok(units)
    }
}

impl Task for SwapOffTask {
    fn name(&self) -> String {
        "swap off".into()
    }
    fn module(&self) -> &'static str {
        "swap"
    }
    fn check(&self, ctx: &Context) -> Result<Vec<Change>, TaskError> {
        let mut c = vec![];
        let active = ctx.sys.active_swaps().map_err(TaskError::new)?;
        if !active.is_empty() {
            c.push(Change::new(format!("swapoff {}", active.join(" "))));
        }
        let fstab = self.fstab(ctx)?;
        if let Some(f) = &fstab {
            c.extend(FileState::new(FSTAB, comment_out_swap(f)).check(&ctx.root)?);
        }
        for u in self.units(ctx, fstab.as_deref())? {
            if !ctx.sys.unit_masked(&u) {
                c.push(Change::new(format!("mask {u}")));
            }
        }
        Ok(c)
    }
    fn apply(&self, ctx: &Context) -> Result<(), TaskError> {
        let fstab = self.fstab(ctx)?;
        // Units are computed before swapoff empties /proc/swaps.
        let units = self.units(ctx, fstab.as_deref())?;
        if !ctx.sys.active_swaps().map_err(TaskError::new)?.is_empty() {
            ctx.sys.swapoff_all().map_err(|e| TaskError::new(format!("swapoff: {e}")))?;
        }
        if let Some(f) = &fstab {
            FileState::new(FSTAB, comment_out_swap(f)).apply(&ctx.root)?;
        }
        for u in units {
            if !ctx.sys.unit_masked(&u) {
                ctx.sys.mask_unit(&u).map_err(|e| TaskError::new(format!("mask {u}: {e}")))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::testutil;
    use proptest::prelude::*;

    const FSTAB_TXT: &str = "# /etc/fstab\nUUID=1234-abcd / ext4 errors=remount-ro 0 1\n/swap.img\tnone\tswap\tsw\t0\t0\nUUID=9f2e-77 none swap sw 0 0\n";

    #[test]
    fn unit_names_match_systemd_escape() {
        assert_eq!(swap_unit_name("/swap.img"), "swap.img.swap");
        assert_eq!(swap_unit_name("/dev/sda2"), "dev-sda2.swap");
        assert_eq!(swap_unit_name("UUID=9f2e-77"), "dev-disk-by\\x2duuid-9f2e\\x2d77.swap");
        assert_eq!(swap_unit_name("/dev/mapper/vg-swap_1"), "dev-mapper-vg\\x2dswap_1.swap");
    }

    #[test]
    fn comments_only_swap_lines() {
        let out = comment_out_swap(FSTAB_TXT);
        assert_eq!(out, "# /etc/fstab\nUUID=1234-abcd / ext4 errors=remount-ro 0 1\n#/swap.img\tnone\tswap\tsw\t0\t0\n#UUID=9f2e-77 none swap sw 0 0\n");
        assert_eq!(comment_out_swap(&out), out);
        assert_eq!(fstab_swap_devices(&out), vec!["/swap.img", "UUID=9f2e-77"]);
    }

    #[test]
    fn turns_swap_off_everywhere() {
        let (d, ctx) = testutil::root();
        std::fs::write(d.path().join("etc/fstab"), FSTAB_TXT).unwrap();
        std::fs::create_dir_all(d.path().join("proc")).unwrap();
        std::fs::write(d.path().join("proc/swaps"), "Filename Type Size Used Priority\n/swap.img file 4194300 0 -2\n")
            .unwrap();
        let whats: Vec<String> = SwapOffTask.check(&ctx).unwrap().into_iter().map(|c| c.what).collect();
        assert_eq!(
            whats,
            vec![
                "swapoff /swap.img",
                "update /etc/fstab",
                "mask dev-disk-by\\x2duuid-9f2e\\x2d77.swap",
                "mask swap.img.swap"
            ]
        );
        SwapOffTask.apply(&ctx).unwrap();
        assert!(SwapOffTask.check(&ctx).unwrap().is_empty());
        assert!(ctx.sys.active_swaps().unwrap().is_empty());
        assert_eq!(
            std::fs::read_link(d.path().join("etc/systemd/system/swap.img.swap")).unwrap(),
            std::path::Path::new("/dev/null")
        );
    }

    proptest! {
        // Commenting is idempotent, never drops a line, and leaves no active swap entry.
        #[test]
        fn commenting_is_idempotent(lines in proptest::collection::vec(prop_oneof![
            "[a-zA-Z0-9/=_-]{1,10} none swap sw 0 0",
            "[a-zA-Z0-9/=_-]{1,10} / ext4 defaults 0 1",
            "#.{0,20}",
            "\\s{0,3}",
        ], 0..8)) {
            let fstab = lines.join("\n");
            let once = comment_out_swap(&fstab);
            prop_assert_eq!(comment_out_swap(&once), once.clone());
            prop_assert_eq!(once.lines().count(), fstab.lines().count());
            prop_assert!(once.lines().all(|l| l.trim_start().starts_with('#') || !is_swap_entry(l)));
        }

        #[test]
        fn unit_names_are_single_safe_tokens(spec in "[ -~]{1,30}") {
            let u = swap_unit_name(&spec);
            prop_assert!(u.ends_with(".swap"));
            prop_assert!(u.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:\\".contains(&b)), "{}", u);
        }
    }
}
