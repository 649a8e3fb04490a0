//! A live prober for day-2 tests and benchmarks: while a change is applied it watches
//! the platform the way a user's clients would, every `interval` (100 ms by default):
//! a TCP connection to the VIP, then `GET /readyz` verified against the cluster CA
//! (when one is given), and optionally a check of its own (an etcd key, say) on a
//! separate thread. Each slot that did not get a good answer in time is one failed
//! probe, with its time, so a test asserts on the count and shows when it happened.
//!
//! ```no_run
//! # use std::time::Duration;
//! # use strata_acceptance_tests::prober::{ProbeTargets, Prober};
//! let p = Prober::start(ProbeTargets::tcp("10.77.3.200", 6443));
//! // ... terraform apply ...
//! let report = p.stop();
//! assert_eq!(report.failed(), 0, "{}", report.summary());
//! ```

use std::fmt;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// A check of the test's own, run once per slot on its own thread (it may be slower
/// than the VIP probe: an etcdctl run inside a node).
pub type Check = Box<dyn Fn() -> Result<()> + Send>;

/// What to watch.
pub struct ProbeTargets {
    /// The VIP (address or name).
    pub vip: String,
    pub port: u16,
    /// The cluster CA: `Some` probes `GET https://vip:port/readyz` verified against it;
    /// `None` probes a TCP connect only (a load balancer in front of plain backends).
    pub ca_pem: Option<String>,
    /// One slot; a probe must have answered within it to count as good.
    pub interval: Duration,
    /// A check of the test's own, e.g. that an etcd key still reads back.
    pub etcd: Option<Check>,
}

impl ProbeTargets {
    /// TCP connects to `vip:port` every 100 ms.
    pub fn tcp(vip: &str, port: u16) -> ProbeTargets {
        ProbeTargets { vip: vip.into(), port, ca_pem: None, interval: Duration::from_millis(100), etcd: None }
    }

    /// `/readyz` through `vip:6443`, verified against `ca_pem`, every 100 ms.
    pub fn readyz(vip: &str, ca_pem: &str) -> ProbeTargets {
        ProbeTargets { ca_pem: Some(ca_pem.into()), ..ProbeTargets::tcp(vip, 6443) }
    }

    pub fn with_check(mut self, check: Check) -> ProbeTargets {
        self.etcd = Some(check);
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    /// No TCP connection to the VIP.
    Tcp,
    /// Connected, but `/readyz` did not answer 200 `ok` in time.
    Readyz,
    /// The test's own check (an etcd key) failed or did not answer in time.
    Etcd,
}

impl fmt::Display for ProbeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProbeKind::Tcp => "tcp",
            ProbeKind::Readyz => "readyz",
            ProbeKind::Etcd => "etcd",
        })
    }
}

#[derive(Debug, Clone)]
pub struct ProbeFailure {
    /// Since the prober started.
    pub at: Duration,
    pub kind: ProbeKind,
    pub error: String,
}

#[derive(Debug, Clone, Default)]
pub struct ProbeReport {
    /// Slots of the VIP probe.
    pub rounds: u64,
    /// Slots of the test's own check.
    pub check_rounds: u64,
    pub failures: Vec<ProbeFailure>,
    pub duration: Duration,
}

impl ProbeReport {
    pub fn failed(&self) -> usize {
        self.failures.len()
    }

    pub fn failed_of(&self, kind: ProbeKind) -> usize {
        self.failures.iter().filter(|f| f.kind == kind).count()
    }

    /// One line, then one line per failure (the first 20), for assertion messages.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} probe slots and {} check slots in {:.1} s, {} failed",
            self.rounds,
            self.check_rounds,
            self.duration.as_secs_f64(),
            self.failed()
        );
        for f in self.failures.iter().take(20) {
            s.push_str(&format!("\n  at {:>7.2} s {}: {}", f.at.as_secs_f64(), f.kind, f.error));
        }
        if self.failed() > 20 {
            s.push_str(&format!("\n  ... and {} more", self.failed() - 20));
        }
        s
    }
}

impl ProbeReport {
    /// Appends this change's figures (one JSON line: change, apply seconds, probe slots,
    /// failed probes by kind) to the file named by `STRATA_DAY2_REPORT`, when set:
    /// scripts/bench_day2.sh collects them into docs/benchmarks.md.
    pub fn record(&self, change: &str, apply: Duration) {
        let Ok(path) = std::env::var("STRATA_DAY2_REPORT") else { return };
        let line = serde_json::json!({
            "change": change,
            "apply_s": apply.as_secs_f64(),
            "rounds": self.rounds,
            "failed": self.failed(),
            "failed_tcp": self.failed_of(ProbeKind::Tcp),
            "failed_readyz": self.failed_of(ProbeKind::Readyz),
            "failed_etcd": self.failed_of(ProbeKind::Etcd),
        });
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&path).expect("STRATA_DAY2_REPORT");
        writeln!(f, "{line}").expect("writing STRATA_DAY2_REPORT");
    }
}

/// A running prober; `stop` ends it and returns what it saw.
pub struct Prober {
    stop: Arc<AtomicBool>,
    started: Instant,
    failures: Arc<Mutex<Vec<ProbeFailure>>>,
    vip_thread: JoinHandle<u64>,
    check_thread: Option<JoinHandle<u64>>,
}

impl Prober {
    /// Starts probing at once; panics only on a CA that does not parse (a test bug).
    pub fn start(targets: ProbeTargets) -> Prober {
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let failures = Arc::new(Mutex::new(Vec::new()));
        let interval = targets.interval;
        let vip = VipProbe::new(&targets).expect("prober: the VIP probe's settings");
        let vip_thread = {
            let (stop, failures) = (stop.clone(), failures.clone());
            std::thread::spawn(move || {
                run_slots(ProbeKind::Tcp, interval, started, &stop, &failures, |deadline| vip.probe(deadline))
            })
        };
        let check_thread = targets.etcd.map(|check| {
            let (stop, failures) = (stop.clone(), failures.clone());
            std::thread::spawn(move || {
                run_slots(ProbeKind::Etcd, interval, started, &stop, &failures, |_| {
                    check().map_err(|e| (ProbeKind::Etcd, format!("{e:#}")))
                })
            })
        });
        Prober { stop, started, failures, vip_thread, check_thread }
    }

    /// Failures so far, without stopping.
    pub fn failures_so_far(&self) -> usize {
        self.failures.lock().unwrap().len()
    }

    pub fn stop(self) -> ProbeReport {
        self.stop.store(true, Ordering::SeqCst);
        let rounds = self.vip_thread.join().expect("prober thread");
        let check_rounds = self.check_thread.map(|t| t.join().expect("prober check thread")).unwrap_or(0);
        let mut failures = std::mem::take(&mut *self.failures.lock().unwrap());
        failures.sort_by_key(|f| f.at);
        ProbeReport { rounds, check_rounds, failures, duration: self.started.elapsed() }
    }
}

/// Runs `probe` once per slot until `stop`. A probe gets until the end of its slot plus
/// one more slot to answer (it must finish in time to be good, not only succeed); the
/// slots it overran count as failed too, since nothing answered in them.
fn run_slots(
    kind: ProbeKind,
    interval: Duration,
    started: Instant,
    stop: &AtomicBool,
    failures: &Mutex<Vec<ProbeFailure>>,
    probe: impl Fn(Instant) -> std::result::Result<(), (ProbeKind, String)>,
) -> u64 {
    let mut slots = 0u64;
    let mut next = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        let begin = Instant::now();
        let at = begin - started;
        let deadline = begin + 2 * interval;
        let result = probe(deadline);
        let took = begin.elapsed();
        // Slots this probe covered: at least one, more when it overran.
        let covered = (took.as_nanos() / interval.as_nanos()).max(1) as u64;
        slots += covered;
        let failure = match result {
            Err((kind, error)) => Some((kind, error)),
            Ok(()) if took > 2 * interval => Some((kind, format!("answered only after {} ms", took.as_millis()))),
            Ok(()) => None,
        };
        if let Some((kind, error)) = failure {
            let mut f = failures.lock().unwrap();
            for i in 0..covered {
                f.push(ProbeFailure { at: at + interval * i as u32, kind, error: error.clone() });
            }
        }
        next += interval * covered as u32;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
    }
    slots
}

struct VipProbe {
    addr: SocketAddr,
    host: String,
    port: u16,
    http: Option<reqwest::blocking::Client>,
}

impl VipProbe {
    fn new(t: &ProbeTargets) -> Result<VipProbe> {
        let addr = (t.vip.as_str(), t.port)
            .to_socket_addrs()
            .with_context(|| format!("resolving {}", t.vip))?
            .next()
            .with_context(|| format!("{} has no address", t.vip))?;
        let http = match &t.ca_pem {
            None => None,
            Some(pem) => Some(
                reqwest::blocking::Client::builder()
                    .use_rustls_tls()
                    .tls_built_in_root_certs(false)
                    .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).context("the cluster CA")?)
                    // A fresh connection per probe: a kept-alive one would hide a VIP
                    // that moved or a listener that went away.
                    .pool_max_idle_per_host(0)
                    .timeout(2 * t.interval)
                    .connect_timeout(2 * t.interval)
                    .build()?,
            ),
        };
        Ok(VipProbe { addr, host: t.vip.clone(), port: t.port, http })
    }

    fn probe(&self, deadline: Instant) -> std::result::Result<(), (ProbeKind, String)> {
        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
        TcpStream::connect_timeout(&self.addr, left)
            .map_err(|e| (ProbeKind::Tcp, format!("connect {}: {e}", self.addr)))?;
        if let Some(http) = &self.http {
            self.readyz(http).map_err(|e| (ProbeKind::Readyz, format!("{e:#}")))?;
        }
        Ok(())
    }

    fn readyz(&self, http: &reqwest::blocking::Client) -> Result<()> {
        let url = format!("https://{}:{}/readyz", self.host, self.port);
        let r = http.get(&url).send().with_context(|| format!("GET {url}"))?;
        let status = r.status();
        let body = r.text().unwrap_or_default();
        if !status.is_success() || body.trim() != "ok" {
            bail!("GET {url}: {status} {}", body.trim());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn a_listener_that_answers_gives_no_failures_and_one_that_closes_gives_them() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let accept = std::thread::spawn(move || {
            // Accept for ~0.6 s, then close the listener: later probes are refused.
            l.set_nonblocking(true).unwrap();
            let until = Instant::now() + Duration::from_millis(600);
            while Instant::now() < until {
                let _ = l.accept();
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        let p = Prober::start(ProbeTargets::tcp("127.0.0.1", port));
        std::thread::sleep(Duration::from_millis(400));
        let mid = p.failures_so_far();
        accept.join().unwrap();
        std::thread::sleep(Duration::from_millis(500));
        let report = p.stop();
        assert_eq!(mid, 0, "{}", report.summary());
        assert!(report.failed_of(ProbeKind::Tcp) >= 3, "{}", report.summary());
        assert!(report.rounds >= 8, "{}", report.summary());
        // Failures come after the listener closed, in order.
        assert!(report.failures[0].at >= Duration::from_millis(400), "{}", report.summary());
    }

    #[test]
    fn a_check_that_hangs_counts_every_slot_it_covered() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let calls = Arc::new(Mutex::new(0u32));
        let c = calls.clone();
        let check: Check = Box::new(move || {
            let mut n = c.lock().unwrap();
            *n += 1;
            if *n == 2 {
                // One check that takes 5 slots: nothing answered in them.
                std::thread::sleep(Duration::from_millis(500));
            }
            Ok(())
        });
        let p = Prober::start(ProbeTargets::tcp("127.0.0.1", port).with_check(check));
        std::thread::sleep(Duration::from_millis(1000));
        let report = p.stop();
        drop(l);
        let etcd = report.failed_of(ProbeKind::Etcd);
        assert_eq!(report.failed_of(ProbeKind::Tcp), 0, "{}", report.summary());
        // The slow check is reported against its slots (about 5 of them, more on a loaded machine).
        assert!((4..=8).contains(&etcd), "{}", report.summary());
        assert!(report.check_rounds >= 8, "{}", report.summary());
    }
}
