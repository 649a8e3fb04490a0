//! The provider's waits between polls, recorded.
//!
//! Every pause the provider takes while it waits for something outside it (an API server
//! to become ready, a Node object to appear, keepalived to elect a VIP holder, a node to
//! answer SSH) goes through [`sleep`] instead of a bare `tokio::time::sleep`. It sleeps
//! exactly as long, and when the pause ends, or is dropped early (a `select!` whose other
//! branch won, a cancelled operation), it emits one INFO event on the target
//! [`TARGET`] with the wait's kind (`what`, one word) and how long it really lasted
//! (`us`). With `TF_LOG_PROVIDER=INFO` these reach Terraform's log as
//! `waited: what=<kind> us=<micros>`, so the time an apply spent waiting is measured,
//! not guessed (scripts/bench_rebuild.sh adds them up).
//!
//! The Proxmox client (`strata_pve_client::Client::sleep`) records its polls of tasks, locks
//! and retries the same way, on the same target with the same fields.
//!
//! Not waits, so not here: the limits raced in a `select!` against work (a time limit
//! ends work, it does not wait for it) and background timers nothing waits on (a lease
//! renewal).

use std::time::Duration;

/// The tracing target of every wait record.
pub const TARGET: &str = "strata::wait";

/// Sleeps for `d`, recording the wait as `what` (a short kind name without spaces,
/// e.g. `apiserver_ready`). Cancellation is the caller's: dropping the future stops the
/// sleep at once, as with `tokio::time::sleep`, and records the part that was waited.
pub async fn sleep(what: &'static str, d: Duration) {
    let _record = Record { what, started: tokio::time::Instant::now() };
    tokio::time::sleep(d).await;
}

/// Emits the wait record when dropped: at the end of the sleep or when it is abandoned.
struct Record {
    what: &'static str,
    started: tokio::time::Instant,
}

impl Drop for Record {
    fn drop(&mut self) {
        let us = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        tracing::info!(target: TARGET, what = self.what, us, "waited");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::layer::SubscriberExt as _;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    /// The hclog JSON lines the provider would write on stderr while `f` runs.
    async fn records(f: impl std::future::Future<Output = ()>) -> Vec<serde_json::Value> {
        let out = Captured::default();
        let subscriber = tracing_subscriber::registry().with(strata_plugin_server::HclogLayer::new(out.clone()));
        let _default = tracing::subscriber::set_default(subscriber);
        f.await;
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    /// The `us` of a record, checked to lie between `at_least` and a generous bound (the
    /// machine may be loaded; the clock is real).
    fn waited_us(line: &serde_json::Value, at_least: Duration) -> u64 {
        let us = line["us"].as_u64().unwrap_or_else(|| panic!("no us in {line}"));
        let (lo, hi) = (at_least.as_micros() as u64, (at_least + Duration::from_secs(2)).as_micros() as u64);
        assert!((lo..hi).contains(&us), "{us} us, expected about {lo}: {line}");
        us
    }

    #[tokio::test]
    async fn a_wait_sleeps_its_duration_and_is_logged_with_its_kind_and_length() {
        let t = std::time::Instant::now();
        let lines = records(sleep("apiserver_ready", Duration::from_millis(300))).await;
        assert!(t.elapsed() >= Duration::from_millis(300));
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0]["@message"], "waited");
        assert_eq!(lines[0]["@level"], "info");
        assert_eq!(lines[0]["what"], "apiserver_ready");
        waited_us(&lines[0], Duration::from_millis(300));
    }

    #[tokio::test]
    async fn a_wait_cut_short_stops_at_once_and_records_only_what_was_waited() {
        let t = std::time::Instant::now();
        let lines = records(async {
            tokio::select! {
                _ = sleep("drain", Duration::from_secs(30)) => panic!("the other branch is sooner"),
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        })
        .await;
        assert!(t.elapsed() < Duration::from_secs(10), "the wait was not cut short");
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0]["what"], "drain");
        waited_us(&lines[0], Duration::from_millis(200));
    }

    #[tokio::test]
    async fn the_proxmox_clients_waits_are_the_same_record() {
        assert_eq!(strata_pve_client::client::WAIT_TARGET, TARGET);
        let ours = records(sleep("proxmox_task", Duration::from_millis(50))).await;
        let pve = records(strata_pve_client::client::recorded_sleep("proxmox_task", Duration::from_millis(50))).await;
        let shape = |v: &serde_json::Value| {
            let mut v = v.clone();
            waited_us(&v, Duration::from_millis(50));
            let o = v.as_object_mut().unwrap();
            o.remove("@timestamp");
            o.remove("us");
            v
        };
        assert_eq!(pve.iter().map(shape).collect::<Vec<_>>(), ours.iter().map(shape).collect::<Vec<_>>());
    }
}
