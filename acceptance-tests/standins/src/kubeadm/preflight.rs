//! kubeadm's preflight checks that matter on the lab's real nodes, reported in kubeadm's
//! `[ERROR Name]: message` form and skippable with `--ignore-preflight-errors`.

use std::path::Path;

use anyhow::{bail, Result};

use super::types::ExternalEtcd;
use crate::version::KubeVersion;

#[derive(Default)]
pub struct Checks {
    errors: Vec<(String, String)>,
    warnings: Vec<(String, String)>,
}

impl Checks {
    pub fn error(&mut self, name: &str, msg: impl Into<String>) {
        self.errors.push((name.into(), msg.into()));
    }

    pub fn warn(&mut self, name: &str, msg: impl Into<String>) {
        self.warnings.push((name.into(), msg.into()));
    }

    /// Prints warnings and ignored errors; fails with the remaining errors.
    pub fn finish(self, ignore: &[String]) -> Result<()> {
        let ignored = |name: &str| ignore.iter().any(|i| i.eq_ignore_ascii_case("all") || i.eq_ignore_ascii_case(name));
        for (n, m) in &self.warnings {
            eprintln!("\t[WARNING {n}]: {m}");
        }
        let mut fatal = Vec::new();
        for (n, m) in self.errors {
            if ignored(&n) {
                eprintln!("\t[WARNING {n}]: {m}");
            } else {
                fatal.push(format!("\t[ERROR {n}]: {m}"));
            }
        }
        if !fatal.is_empty() {
            bail!(
                "[preflight] Some fatal errors occurred:\n{}\n[preflight] If you know what you are doing, you can make a check non-fatal with `--ignore-preflight-errors=...`",
                fatal.join("\n")
            );
        }
        Ok(())
    }
}

pub fn privileged(c: &mut Checks) {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc_geteuid() } != 0 {
        c.error("IsPrivilegedUser", "user is not running as root");
    }
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

/// kubeadm's SwapCheck (`cmd/kubeadm/app/preflight/checks.go`, `SwapCheck.Check`): any
/// line of `/proc/swaps` after its header is a WARNING (not an error: the kubelet may use
/// swap on cgroup v2), with this message; no `/proc/swaps` is no warning.
pub fn swap_warning(proc_swaps: Option<&str>) -> Option<&'static str> {
    (proc_swaps?.lines().count() > 1).then_some(
        "swap is supported for cgroup v2 only. The kubelet must be properly configured to use swap. \
         Please refer to https://kubernetes.io/docs/concepts/architecture/nodes/#swap-memory, or disable swap on the node",
    )
}

pub fn swap(c: &mut Checks) {
    if let Some(w) = swap_warning(std::fs::read_to_string("/proc/swaps").ok().as_deref()) {
        c.warn("Swap", w);
    }
}

/// kubeadm's `ControlPlaneNumCPU` and `ControlPlaneMem` (MB)
/// (`cmd/kubeadm/app/constants/constants.go`).
pub const CONTROL_PLANE_NUM_CPU: usize = 2;
pub const CONTROL_PLANE_MEM: u64 = 1700;

/// kubeadm's NumCPUCheck (`cmd/kubeadm/app/preflight/checks.go`, `NumCPUCheck.Check`), an
/// error, in InitNodeChecks: `kubeadm init` and a control-plane `kubeadm join`.
pub fn num_cpu_error(num_cpu: usize, required: usize) -> Option<String> {
    (num_cpu < required).then(|| format!("the number of available CPUs {num_cpu} is less than the required {required}"))
}

/// kubeadm's MemCheck (`cmd/kubeadm/app/preflight/checks_linux.go`, `MemCheck.Check`), an
/// error, in InitNodeChecks: `Totalram * Unit / 1024 / 1024` of sysinfo(2) against the
/// minimum in MB.
pub fn mem_error(total_ram: u64, unit: u64, required_mb: u64) -> Option<String> {
    let actual = total_ram.saturating_mul(unit) / 1024 / 1024;
    (actual < required_mb).then(|| format!("the system RAM ({actual} MB) is less than the minimum {required_mb} MB"))
}

/// Go's `runtime.NumCPU` on Linux: the CPUs in this process's affinity mask
/// (sched_getaffinity(2)), not the cgroup quota.
fn num_cpu() -> usize {
    let mut mask = [0u64; 16];
    // SAFETY: the mask is a writable buffer of the size passed.
    let n = unsafe { sched_getaffinity(0, std::mem::size_of_val(&mask), mask.as_mut_ptr()) };
    if n != 0 {
        return 1;
    }
    mask.iter().map(|w| w.count_ones() as usize).sum()
}

/// `struct sysinfo` of sysinfo(2) on 64-bit Linux.
#[repr(C)]
struct SysInfo {
    uptime: i64,
    loads: [u64; 3],
    totalram: u64,
    freeram: u64,
    sharedram: u64,
    bufferram: u64,
    totalswap: u64,
    freeswap: u64,
    procs: u16,
    pad: u16,
    totalhigh: u64,
    freehigh: u64,
    mem_unit: u32,
    _f: [u8; 4],
}

extern "C" {
    fn sched_getaffinity(pid: i32, size: usize, mask: *mut u64) -> i32;
    fn sysinfo(info: *mut SysInfo) -> i32;
}

/// NumCPU and Mem, the control-plane checks of InitNodeChecks.
pub fn control_plane_resources(c: &mut Checks) {
    if let Some(e) = num_cpu_error(num_cpu(), CONTROL_PLANE_NUM_CPU) {
        c.error("NumCPU", e);
    }
    // SAFETY: sysinfo fills the zeroed struct it is given.
    let mut info: SysInfo = unsafe { std::mem::zeroed() };
    if unsafe { sysinfo(&mut info) } != 0 {
        c.error("Mem", format!("failed to get system info: {}", std::io::Error::last_os_error()));
        return;
    }
    if let Some(e) = mem_error(info.totalram, info.mem_unit as u64, CONTROL_PLANE_MEM) {
        c.error("Mem", e);
    }
}

pub const IPV4_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";
pub const IPV6_DEFAULT_FORWARDING: &str = "/proc/sys/net/ipv6/conf/default/forwarding";

/// kubeadm's FileContentCheck (`cmd/kubeadm/app/preflight/checks.go`,
/// `FileContentCheck.Check`): the first `want.len()` bytes of the file must be `want`;
/// `content` is the file's bytes, `None` when it cannot be opened.
pub fn file_content_error(path: &str, content: Option<&[u8]>, want: &[u8]) -> Option<String> {
    let Some(content) = content else {
        return Some(format!("{path} does not exist"));
    };
    let head = &content[..content.len().min(want.len())];
    (head != want).then(|| format!("{path} contents are not set to {}", String::from_utf8_lossy(want)))
}

/// `FileContent-<path with / as ->`, FileContentCheck's name: for ip_forward
/// `FileContent--proc-sys-net-ipv4-ip_forward`.
pub fn file_content_name(path: &str) -> String {
    format!("FileContent-{}", check_name(path))
}

fn file_content(c: &mut Checks, path: &str, want: &[u8]) {
    if let Some(e) = file_content_error(path, std::fs::read(path).ok().as_deref(), want) {
        c.error(&file_content_name(path), e);
    }
}

/// Which forwarding checks apply: (IPv4, IPv6).
#[derive(Debug, PartialEq, Eq, Clone, Copy, Default)]
pub struct Forwarding {
    pub ipv4: bool,
    pub ipv6: bool,
}

fn cidr_family(cidr: &str) -> Option<bool> {
    cidr.parse::<ipnet::IpNet>().ok().map(|n| n.addr().is_ipv4())
}

/// `InitNodeChecks` (`cmd/kubeadm/app/preflight/checks.go`) for `kubeadm init` (not for
/// a control-plane join, whose forwarding checks come from `JoinNodeChecks`): IPv4 when
/// any comma-separated service or pod subnet is an IPv4 CIDR or the advertise address is
/// IPv4; IPv6 likewise.
pub fn init_forwarding(service_subnet: &str, pod_subnet: &str, advertise_address: &str) -> Forwarding {
    let mut f = Forwarding::default();
    for cidr in service_subnet.split(',').chain(pod_subnet.split(',')) {
        match cidr_family(cidr) {
            Some(true) => f.ipv4 = true,
            Some(false) => f.ipv6 = true,
            None => {}
        }
    }
    match advertise_address.parse::<std::net::IpAddr>() {
        Ok(ip) if ip.is_ipv4() => f.ipv4 = true,
        Ok(_) => f.ipv6 = true,
        Err(_) => {}
    }
    f
}

/// `JoinNodeChecks` (`cmd/kubeadm/app/preflight/checks.go`) for `kubeadm join` (worker
/// and control plane): the family of the discovery `apiServerEndpoint`'s host, when it is
/// an IP address (`net.SplitHostPort`; a DNS name gets neither check).
pub fn join_forwarding(api_server_endpoint: &str) -> Forwarding {
    let host = if let Some(rest) = api_server_endpoint.strip_prefix('[') {
        rest.split_once("]:").map(|(h, _)| h)
    } else {
        api_server_endpoint.rsplit_once(':').map(|(h, _)| h).filter(|h| !h.contains(':'))
    };
    match host.and_then(|h| h.parse::<std::net::IpAddr>().ok()) {
        Some(ip) => Forwarding { ipv4: ip.is_ipv4(), ipv6: ip.is_ipv6() },
        None => Forwarding::default(),
    }
}

/// addIPv4Checks / addIPv6Checks (`cmd/kubeadm/app/preflight/checks_linux.go`): an
/// ERROR `[ERROR FileContent--proc-sys-net-ipv4-ip_forward]: /proc/sys/net/ipv4/ip_forward
/// contents are not set to 1` unless forwarding is on.
pub fn forwarding(c: &mut Checks, f: Forwarding) {
    if f.ipv4 {
        file_content(c, IPV4_FORWARD, b"1");
    }
    if f.ipv6 {
        file_content(c, IPV6_DEFAULT_FORWARDING, b"1");
    }
}

/// addCommonChecks (`cmd/kubeadm/app/preflight/checks.go`) for the container runtime:
/// `containerRuntime.Connect()` (cri-client validates the CRI v1 API with `Version`); when
/// that fails kubeadm only logs a warning and skips ContainerRuntimeCheck (the image pull
/// check, [`cri_connect_for_images`], then fails init and control-plane joins); when it
/// connects, ContainerRuntimeCheck (`[ERROR CRI]`) asks `Status` and needs RuntimeReady.
pub async fn cri(c: &mut Checks, cri_socket: &str) {
    match crate::cri::Runtime::connect(cri_socket).await {
        Err(e) => eprintln!(
            "W{} [preflight] WARNING: Couldn't create the interface used for talking to the container runtime: failed to create new CRI runtime service: {e:#}",
            klog_stamp()
        ),
        Ok(rt) => {
            if let Err(e) = rt.is_running().await {
                c.error("CRI", format!("{e:#}"));
            }
        }
    }
}

/// RunPullImagesCheck (`checks.go`; init and control-plane join): connecting to the
/// runtime is required, and its failure is fatal as handleError prints it (the message
/// then "[preflight] If you know what you are doing…" with no newline between, as upstream).
pub async fn cri_connect_for_images(cri_socket: &str) -> Result<()> {
    if let Err(e) = crate::cri::Runtime::connect(cri_socket).await {
        bail!(
            "[preflight] Some fatal errors occurred:\nfailed to create new CRI runtime service: {e:#}[preflight] If you know what you are doing, you can make a check non-fatal with `--ignore-preflight-errors=...`"
        );
    }
    Ok(())
}

/// kubeadm's `constants.PauseVersion` (`cmd/kubeadm/app/constants/constants.go`) per
/// kubeadm minor: 3.10.1 in 1.34 and 1.35, 3.10.2 in 1.36 (kubeadm 1.36 asks for
/// `pause:3.10.2`). It follows kubeadm's own version, not kubernetesVersion.
pub fn pause_version(kubeadm: KubeVersion) -> &'static str {
    if kubeadm.minor >= 36 {
        "3.10.2"
    } else {
        "3.10.1"
    }
}

/// The default `imageRepository` (`constants.DefaultImageRepository`).
pub const DEFAULT_IMAGE_REPOSITORY: &str = "registry.k8s.io";

/// images.GetPauseImage: `<imageRepository>/pause:<PauseVersion>`.
pub fn pause_image(image_repository: &str, kubeadm: KubeVersion) -> String {
    format!("{image_repository}/pause:{}", pause_version(kubeadm))
}

/// What ImagePullCheck's sandbox comparison yields in the stand-in.
#[derive(Debug, PartialEq, Eq)]
pub enum SandboxCheck {
    Consistent,
    /// Upstream's klog warning (the default imageRepository).
    Warning(String),
    /// A `[ERROR ImagePull]` (a non-default imageRepository: an air-gapped mirror).
    Error(String),
}

/// ImagePullCheck's comparison (`checks.go`): the runtime's sandbox image against
/// kubeadm's pause image. Upstream only warns; the stand-in makes a mismatch an error when
/// imageRepository is not the default (offline, the runtime cannot pull its own sandbox
/// image, and the cluster would fail later, at the first pod).
pub fn compare_sandbox(runtime_sandbox: &str, image_repository: &str, kubeadm: KubeVersion) -> SandboxCheck {
    let want = pause_image(image_repository, kubeadm);
    if runtime_sandbox == want {
        return SandboxCheck::Consistent;
    }
    let msg = format!(
        "detected that the sandbox image {runtime_sandbox:?} of the container runtime is inconsistent with that used by kubeadm. It is recommended to use {want:?} as the CRI sandbox image."
    );
    if image_repository == DEFAULT_IMAGE_REPOSITORY {
        SandboxCheck::Warning(msg)
    } else {
        SandboxCheck::Error(msg)
    }
}

/// RunPullImagesCheck and ImagePullCheck (`checks.go`; init and control-plane join):
/// connecting to the runtime is required (its failure is fatal as handleError prints it,
/// the message then "[preflight] If you know what you are doing…" with no newline between,
/// as upstream). Then, unless imagePullPolicy is Never, the sandbox comparison
/// ([`compare_sandbox`]; an unreadable sandbox image is skipped, as upstream logs it at
/// V(4)), and with a non-default imageRepository the pause image is pulled through CRI
/// (IfNotPresent: ImageStatus first) with util/runtime's PullImageRetry (5) attempts,
/// failing `[ERROR ImagePull]: failed to pull image X: failed to pull image X: rpc error: …`.
/// Only the pause image: the other control-plane images are stand-ins and exist as no
/// image; with the default imageRepository nothing is pulled (the air-gapped lab cannot
/// reach registry.k8s.io, and the stand-ins need no image).
pub async fn pull_images_check(
    cri_socket: &str,
    image_repository: &str,
    pull_policy: &str,
    kubeadm: KubeVersion,
    ignore: &[String],
) -> Result<()> {
    let rt = match crate::cri::Runtime::connect_with_timeout(cri_socket, std::time::Duration::from_secs(300)).await {
        Ok(rt) => rt,
        Err(e) => bail!(
            "[preflight] Some fatal errors occurred:\nfailed to create new CRI runtime service: {e:#}[preflight] If you know what you are doing, you can make a check non-fatal with `--ignore-preflight-errors=...`"
        ),
    };
    let mut c = Checks::default();
    if pull_policy != "Never" {
        if let Ok(sandbox) = rt.sandbox_image().await {
            match compare_sandbox(&sandbox, image_repository, kubeadm) {
                SandboxCheck::Consistent => {}
                SandboxCheck::Warning(m) => eprintln!("W{} {:>7} checks.go:827] {m}", klog_stamp(), std::process::id()),
                SandboxCheck::Error(m) => c.error("ImagePull", m),
            }
        }
        if image_repository != DEFAULT_IMAGE_REPOSITORY {
            let image = pause_image(image_repository, kubeadm);
            let exists = pull_policy == "IfNotPresent"
                && rt.image_status(&image, false).await.map(|r| r.image.is_some()).unwrap_or(false);
            if !exists {
                let mut last = String::new();
                let mut pulled = false;
                for _ in 0..PULL_IMAGE_RETRY {
                    match rt.pull_image(&image).await {
                        Ok(_) => {
                            pulled = true;
                            break;
                        }
                        Err(e) => last = e,
                    }
                }
                if !pulled {
                    c.error("ImagePull", format!("failed to pull image {image}: failed to pull image {image}: {last}"));
                }
            }
        }
    }
    c.finish(ignore)
}

/// `constants.PullImageRetry`: util/runtime's PullImage tries this many times.
pub const PULL_IMAGE_RETRY: usize = 5;

/// klog's header time (`MMDD HH:MM:SS.micros`).
fn klog_stamp() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:02}{:02} {:02}:{:02}:{:02}.{:06}",
        now.month() as u8,
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.microsecond()
    )
}

/// addExecChecks (`cmd/kubeadm/app/preflight/checks_linux.go`): InPathCheck for each
/// binary, `true` = mandatory (an error), `false` = a warning. (conntrack is checked only
/// for a Kubernetes version below 1.32; every pinned version is newer.)
pub const IN_PATH: &[(&str, bool)] = &[
    ("ip", true),
    ("iptables", true),
    ("mount", true),
    ("nsenter", true),
    ("ebtables", false),
    ("ethtool", false),
    ("socat", false),
    ("tc", false),
    ("touch", false),
];

/// Go's exec.LookPath: a name with a slash is checked as is; otherwise each `PATH` entry
/// (empty = the current directory) for an executable regular file.
pub fn look_path(name: &str, path_env: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if name.contains('/') {
        return executable(Path::new(name));
    }
    path_env.split(':').any(|dir| executable(&Path::new(if dir.is_empty() { "." } else { dir }).join(name)))
}

/// InPathCheck.Check: `[ERROR FileExisting-ip]: ip not found in system path`, or the
/// same text as a warning for the optional ones.
pub fn exec_checks(c: &mut Checks, path_env: &str) {
    for (exe, mandatory) in IN_PATH {
        if !look_path(exe, path_env) {
            let name = format!("FileExisting-{}", check_name(exe));
            let msg = format!("{exe} not found in system path");
            if *mandatory {
                c.error(&name, msg);
            } else {
                c.warn(&name, msg);
            }
        }
    }
}

/// `kubeadm`'s MinimumKubeletVersion: its own minor - 3 (`constants.go`,
/// getSkewedKubernetesVersion(-3)).
pub fn minimum_kubelet_version(kubeadm: KubeVersion) -> KubeVersion {
    KubeVersion { major: kubeadm.major, minor: kubeadm.minor.saturating_sub(3), patch: 0 }
}

/// KubeletVersionCheck.Check (`checks.go`): older than MinimumKubeletVersion is an error; in
/// `kubeadm init` (the only caller passing a Kubernetes version) a kubelet of a newer minor
/// than the control plane is one too. Versions print as Go's version.String() (no `v`).
pub fn kubelet_version_error(kubelet: KubeVersion, kubeadm: KubeVersion, k8s: Option<KubeVersion>) -> Option<String> {
    let bare = |v: KubeVersion| format!("{}.{}.{}", v.major, v.minor, v.patch);
    if kubelet < minimum_kubelet_version(kubeadm) {
        return Some(format!(
            "Kubelet version {:?} is lower than kubeadm can support. Please upgrade kubelet",
            bare(kubelet)
        ));
    }
    let k8s = k8s?;
    (kubelet.major > k8s.major || kubelet.minor > k8s.minor).then(|| {
        format!(
            "the kubelet version is higher than the control plane version. This is not a supported version skew and may lead to a malfunctional cluster. Kubelet version: {:?} Control plane version: {:?}",
            bare(kubelet),
            bare(k8s)
        )
    })
}

/// GetKubeletVersion (`checks.go`): `kubelet --version` must print `Kubernetes vX.Y.Z`.
pub fn parse_kubelet_version(output: &str) -> Result<KubeVersion, String> {
    let clean = output.trim();
    clean
        .strip_prefix("Kubernetes v")
        .and_then(|v| KubeVersion::parse(v).ok())
        .ok_or_else(|| format!("Unable to parse output from Kubelet: {clean:?}"))
}

fn kubelet_version(c: &mut Checks, kubeadm: KubeVersion, k8s: Option<KubeVersion>) {
    let out = match std::process::Command::new("kubelet").arg("--version").output() {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        Ok(o) => {
            c.error(
                "KubeletVersion",
                format!("couldn't get kubelet version: cannot execute 'kubelet --version': {}", o.status),
            );
            return;
        }
        Err(e) => {
            c.error("KubeletVersion", format!("couldn't get kubelet version: cannot execute 'kubelet --version': {e}"));
            return;
        }
    };
    match parse_kubelet_version(&out) {
        Err(e) => c.error("KubeletVersion", format!("couldn't get kubelet version: {e}")),
        Ok(v) => {
            if let Some(e) = kubelet_version_error(v, kubeadm, k8s) {
                c.error("KubeletVersion", e);
            }
        }
    }
}

/// addCommonChecks (`checks.go`) as the stand-in does them: the CRI, swap, the PATH
/// binaries, the kubelet's version (`k8s`: the control plane version in init, none in join).
pub async fn common(c: &mut Checks, cri_socket: &str, kubeadm: KubeVersion, k8s: Option<KubeVersion>) {
    cri(c, cri_socket).await;
    swap(c);
    exec_checks(c, &std::env::var("PATH").unwrap_or_default());
    kubelet_version(c, kubeadm, k8s);
}

pub fn port(c: &mut Checks, port: u16) {
    if std::net::TcpListener::bind(("0.0.0.0", port)).is_err() {
        c.error(&format!("Port-{port}"), format!("Port {port} is in use"));
    }
}

fn check_name(path: &str) -> String {
    path.replace('/', "-")
}

pub fn dir_available(c: &mut Checks, dir: &str) {
    if std::fs::read_dir(dir).map(|mut d| d.next().is_some()).unwrap_or(false) {
        c.error(&format!("DirAvailable-{}", check_name(dir)), format!("{dir} is not empty"));
    }
}

pub fn file_available(c: &mut Checks, file: &str) {
    if Path::new(file).exists() {
        c.error(&format!("FileAvailable-{}", check_name(file)), format!("{file} already exists"));
    }
}

/// kubeadm's `MinExternalEtcdVersion` (`cmd/kubeadm/app/constants/constants.go`) for the
/// minors the stand-ins pin: `3.5.24-0` in each. 1.35 and 1.36 carry it from
/// kubernetes#134779 ("Bump supported etcd version to v3.5.24"), 1.34 from its
/// release-1.34 backport kubernetes#134861 (in 1.34.2 and later; the stand-ins pin 1.34.3).
/// (Another minor would need its own value looked up; none is pinned.)
pub fn min_external_etcd_version(_kubeadm: crate::version::KubeVersion) -> &'static str {
    "3.5.24-0"
}

/// MAJOR, MINOR, PATCH.
type Core = (u64, u64, u64);

/// `MAJOR.MINOR.PATCH[-PRE][+BUILD]` for a semantic-version comparison, as kubeadm's
/// `versionutil.ParseSemantic`.
fn semver(v: &str) -> Option<(Core, Option<&str>)> {
    let v = v.split('+').next()?;
    let (core, pre) = match v.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (v, None),
    };
    let n: Vec<u64> = core.split('.').map(|x| x.parse().ok()).collect::<Option<_>>()?;
    (n.len() == 3).then_some(((n[0], n[1], n[2]), pre))
}

/// `version.LessThan(min)` of kubeadm's versionutil (a pre-release sorts before its release).
fn less_than(version: &str, min: &str) -> Option<bool> {
    let ((a, ap), (b, bp)) = (semver(version)?, semver(min)?);
    Some(match a.cmp(&b) {
        std::cmp::Ordering::Equal => match (ap, bp) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(x), Some(y)) => x < y,
        },
        o => o == std::cmp::Ordering::Less,
    })
}

/// What kubeadm's ExternalEtcdVersionCheck says of one endpoint's `/version` answer
/// (`etcdserver`): the error, or `None` when the version is accepted.
pub fn etcd_version_error(etcdserver: &str, min: &str) -> Option<String> {
    match less_than(etcdserver, min) {
        None => Some(format!("couldn't parse external etcd version {etcdserver:?}")),
        Some(true) => Some(format!(
            "this version of kubeadm only supports external etcd version >= {min}. Current version: {etcdserver}"
        )),
        Some(false) => None,
    }
}

/// External etcd, as kubeadm's ExternalEtcdVersionCheck (`cmd/kubeadm/app/preflight/checks.go`):
/// every endpoint's `/version` is read over TLS with the client certificate (the server
/// verified against the etcd CA), and an `etcdserver` older than `MinExternalEtcdVersion`
/// is an `[ERROR ExternalEtcdVersion]` per endpoint. One difference: an endpoint that does
/// not answer is a warning while another answers (kubeadm makes it an error too).
pub async fn external_etcd(c: &mut Checks, e: &ExternalEtcd, kubeadm: crate::version::KubeVersion) {
    for f in [&e.ca_file, &e.cert_file, &e.key_file] {
        if !f.is_empty() && !Path::new(f).is_file() {
            c.error(&format!("FileExisting-{}", check_name(f)), format!("{f} not found"));
            return;
        }
    }
    if !e.cert_file.is_empty() {
        if let Err(err) = crate::pki::check_pair(&e.cert_file, &e.key_file) {
            c.error("ExternalEtcdClientCertificates", format!("{err:#}"));
            return;
        }
    }
    let versions = match crate::etcd::server_versions(&e.endpoints, &e.ca_file, &e.cert_file, &e.key_file).await {
        Ok(v) => v,
        Err(err) => {
            c.error("ExternalEtcdVersion", format!("{err:#}"));
            return;
        }
    };
    let min = min_external_etcd_version(kubeadm);
    let failed: Vec<String> =
        versions.iter().filter_map(|(ep, r)| r.as_ref().err().map(|e| format!("{ep}: {e:#}"))).collect();
    if failed.len() == versions.len() {
        c.error("ExternalEtcdVersion", format!("no etcd endpoint answered over TLS: {}", failed.join("; ")));
        return;
    }
    for f in failed {
        c.warn("ExternalEtcdVersion", f);
    }
    for (_, r) in &versions {
        if let Some(msg) = r.as_ref().ok().and_then(|v| etcd_version_error(v, min)) {
            c.error("ExternalEtcdVersion", msg);
        }
    }
}

#[cfg(test)]
mod tests {
    fn v(minor: u32) -> KubeVersion {
        KubeVersion { major: 1, minor, patch: 0 }
    }

    /// constants.PauseVersion per kubeadm minor, and images.GetPauseImage.
    #[test]
    fn the_pause_image_follows_kubeadm_and_the_image_repository() {
        assert_eq!(pause_version(v(34)), "3.10.1");
        assert_eq!(pause_version(v(35)), "3.10.1");
        assert_eq!(pause_version(v(36)), "3.10.2");
        assert_eq!(pause_image("registry.k8s.io", v(35)), "registry.k8s.io/pause:3.10.1");
        assert_eq!(pause_image("10.77.1.11:5000/k8s", v(36)), "10.77.1.11:5000/k8s/pause:3.10.2");
    }

    /// ImagePullCheck's comparison: upstream's warning text with the default repository,
    /// the same text as an error with a mirror, nothing when they agree.
    #[test]
    fn sandbox_comparison_warns_by_default_and_fails_with_a_mirror() {
        assert_eq!(compare_sandbox("registry.k8s.io/pause:3.10.1", "registry.k8s.io", v(34)), SandboxCheck::Consistent);
        let w = compare_sandbox("registry.k8s.io/pause:3.6", "registry.k8s.io", v(35));
        assert_eq!(
            w,
            SandboxCheck::Warning("detected that the sandbox image \"registry.k8s.io/pause:3.6\" of the container runtime is inconsistent with that used by kubeadm. It is recommended to use \"registry.k8s.io/pause:3.10.1\" as the CRI sandbox image.".into())
        );
        let e = compare_sandbox("registry.k8s.io/pause:3.6", "mirror.lab:5000", v(36));
        assert_eq!(
            e,
            SandboxCheck::Error("detected that the sandbox image \"registry.k8s.io/pause:3.6\" of the container runtime is inconsistent with that used by kubeadm. It is recommended to use \"mirror.lab:5000/pause:3.10.2\" as the CRI sandbox image.".into())
        );
        assert_eq!(compare_sandbox("mirror.lab:5000/pause:3.10.2", "mirror.lab:5000", v(36)), SandboxCheck::Consistent);
        // containerd 2.x reports an empty sandboxImage: a mismatch as upstream (kubeadm#3146).
        assert!(matches!(compare_sandbox("", "registry.k8s.io", v(34)), SandboxCheck::Warning(_)));
    }

    /// `kubeadm config images list`: control plane, kube-proxy, pause.
    #[test]
    fn images_list_names_the_pause_image_of_kubeadm() {
        let l = crate::kubeadm::images_list("mirror.lab:5000", KubeVersion { major: 1, minor: 35, patch: 0 }, v(36));
        assert_eq!(
            l,
            vec![
                "mirror.lab:5000/kube-apiserver:v1.35.0",
                "mirror.lab:5000/kube-controller-manager:v1.35.0",
                "mirror.lab:5000/kube-scheduler:v1.35.0",
                "mirror.lab:5000/kube-proxy:v1.35.0",
                "mirror.lab:5000/pause:3.10.2",
            ]
        );
    }

    use super::*;
    use crate::version::KubeVersion;

    /// cmd/kubeadm/app/preflight/checks_linux.go, addIPv4Checks: FileContentCheck{Path:
    /// ipv4Forward, Content: []byte{'1'}}, an error; checks.go FileContentCheck.Check and
    /// Name give the message and the check's name.
    #[test]
    fn ip_forward_must_be_1_as_kubeadms_file_content_check() {
        assert_eq!(file_content_name(IPV4_FORWARD), "FileContent--proc-sys-net-ipv4-ip_forward");
        assert_eq!(
            file_content_name(IPV6_DEFAULT_FORWARDING),
            "FileContent--proc-sys-net-ipv6-conf-default-forwarding"
        );
        assert_eq!(file_content_error(IPV4_FORWARD, Some(b"1\n"), b"1"), None);
        assert_eq!(
            file_content_error(IPV4_FORWARD, Some(b"0\n"), b"1").as_deref(),
            Some("/proc/sys/net/ipv4/ip_forward contents are not set to 1")
        );
        assert!(file_content_error(IPV4_FORWARD, Some(b""), b"1").is_some());
        assert_eq!(
            file_content_error(IPV4_FORWARD, None, b"1").as_deref(),
            Some("/proc/sys/net/ipv4/ip_forward does not exist")
        );
        let mut c = Checks::default();
        c.error(&file_content_name(IPV4_FORWARD), file_content_error(IPV4_FORWARD, Some(b"0\n"), b"1").unwrap());
        let e = c.finish(&[]).unwrap_err().to_string();
        assert!(
            e.contains("[ERROR FileContent--proc-sys-net-ipv4-ip_forward]: /proc/sys/net/ipv4/ip_forward contents are not set to 1"),
            "{e}"
        );
    }

    /// cmd/kubeadm/app/preflight/checks.go, InitNodeChecks (service/pod subnets and the
    /// advertise address) and JoinNodeChecks (the discovery apiServerEndpoint's host).
    #[test]
    fn which_forwarding_checks_apply_as_kubeadm_decides() {
        let v4 = Forwarding { ipv4: true, ipv6: false };
        let v6 = Forwarding { ipv4: false, ipv6: true };
        let both = Forwarding { ipv4: true, ipv6: true };
        assert_eq!(init_forwarding("10.96.0.0/12", "", ""), v4);
        assert_eq!(init_forwarding("fd00:10:96::/112", "", "fd00::1"), v6);
        assert_eq!(init_forwarding("10.96.0.0/12,fd00:10:96::/112", "10.244.0.0/16", "10.0.0.1"), both);
        assert_eq!(init_forwarding("fd00:10:96::/112", "", "10.0.0.1"), both);
        assert_eq!(init_forwarding("", "", ""), Forwarding::default());
        assert_eq!(join_forwarding("10.77.0.200:8443"), v4);
        assert_eq!(join_forwarding("[fd00::200]:6443"), v6);
        assert_eq!(join_forwarding("api.example.org:6443"), Forwarding::default());
        assert_eq!(join_forwarding("fd00::200"), Forwarding::default(), "no port: SplitHostPort fails");
    }

    /// cmd/kubeadm/app/preflight/checks.go, NumCPUCheck.Check with
    /// constants.ControlPlaneNumCPU = 2.
    #[test]
    fn fewer_than_two_cpus_are_refused_for_a_control_plane() {
        assert_eq!(
            num_cpu_error(1, CONTROL_PLANE_NUM_CPU).as_deref(),
            Some("the number of available CPUs 1 is less than the required 2")
        );
        assert_eq!(num_cpu_error(2, CONTROL_PLANE_NUM_CPU), None);
        assert_eq!(num_cpu_error(64, CONTROL_PLANE_NUM_CPU), None);
        assert!(num_cpu() >= 1);
    }

    /// cmd/kubeadm/app/preflight/checks_linux.go, MemCheck.Check with
    /// constants.ControlPlaneMem = 1700 (MB as Totalram * Unit / 1024 / 1024).
    #[test]
    fn less_than_1700_mb_is_refused_for_a_control_plane() {
        let mib = 1024 * 1024;
        assert_eq!(
            mem_error(1699 * mib, 1, CONTROL_PLANE_MEM).as_deref(),
            Some("the system RAM (1699 MB) is less than the minimum 1700 MB")
        );
        assert_eq!(mem_error(1700 * mib, 1, CONTROL_PLANE_MEM), None);
        // A 2 GiB machine; 4 KiB units.
        assert_eq!(mem_error(524_288, 4096, CONTROL_PLANE_MEM), None);
        assert_eq!(
            mem_error(1024 * 1024 * 1023, 1, CONTROL_PLANE_MEM).as_deref(),
            Some("the system RAM (1023 MB) is less than the minimum 1700 MB")
        );
        let mut c = Checks::default();
        control_plane_resources(&mut c);
        assert!(c.errors.iter().all(|(n, _)| n == "NumCPU" || n == "Mem"), "{:?}", c.errors);
    }

    /// cmd/kubeadm/app/preflight/checks.go, SwapCheck.Check: a warning (not an error) when
    /// /proc/swaps has more than its header line, none when it cannot be read.
    #[test]
    fn swap_on_is_a_warning_as_in_kubeadm() {
        let header = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n";
        assert_eq!(swap_warning(Some(header)), None);
        assert_eq!(swap_warning(None), None);
        let on = format!("{header}/swapfile                               file\t\t1048572\t\t0\t\t-2\n");
        let w = swap_warning(Some(&on)).unwrap();
        assert!(w.starts_with("swap is supported for cgroup v2 only. The kubelet must be properly configured"), "{w}");
        let mut c = Checks::default();
        c.warn("Swap", w);
        assert!(c.finish(&[]).is_ok(), "a warning does not stop kubeadm");
    }

    /// cmd/kubeadm/app/preflight/checks.go, ExternalEtcdVersionCheck.Check: the message,
    /// and the comparison with constants.MinExternalEtcdVersion as a semantic version.
    #[test]
    fn an_external_etcd_older_than_kubeadms_minimum_is_refused_with_kubeadms_message() {
        for kubeadm in ["v1.34.3", "v1.35.0", "v1.36.1", "v1.36.2"] {
            let min = min_external_etcd_version(KubeVersion::parse(kubeadm).unwrap());
            assert_eq!(min, "3.5.24-0", "{kubeadm}");
            assert_eq!(
                etcd_version_error("3.4.23", min).as_deref(),
                Some(
                    "this version of kubeadm only supports external etcd version >= 3.5.24-0. Current version: 3.4.23"
                ),
                "{kubeadm}"
            );
            for old in ["3.5.16", "3.5.23", "3.5.23-rc.1"] {
                assert!(etcd_version_error(old, min).is_some(), "{kubeadm} {old}");
            }
            for ok in ["3.5.24", "3.5.30", "3.6.6"] {
                assert_eq!(etcd_version_error(ok, min), None, "{kubeadm} {ok}");
            }
        }
        assert!(etcd_version_error("not-a-version", "3.5.24-0").unwrap().contains("couldn't parse"));
    }

    #[test]
    fn the_version_error_is_fatal_unless_ignored() {
        let mut c = Checks::default();
        c.error("ExternalEtcdVersion", etcd_version_error("3.4.23", "3.5.24-0").unwrap());
        let e = c.finish(&[]).unwrap_err().to_string();
        assert!(e.contains("[ERROR ExternalEtcdVersion]: this version of kubeadm only supports external etcd version >= 3.5.24-0. Current version: 3.4.23"), "{e}");
        let mut c = Checks::default();
        c.error("ExternalEtcdVersion", etcd_version_error("3.4.23", "3.5.24-0").unwrap());
        assert!(c.finish(&["ExternalEtcdVersion".into()]).is_ok());
    }

    /// cmd/kubeadm/app/preflight/checks_linux.go addExecChecks + checks.go InPathCheck:
    /// ip, iptables, mount, nsenter are errors when missing from PATH; ebtables, ethtool,
    /// socat, tc, touch warnings; the name is FileExisting-<binary>.
    #[test]
    fn binaries_on_path_as_kubeadms_in_path_check() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        for b in ["ip", "mount", "nsenter", "socat", "tc", "touch", "ebtables"] {
            std::fs::write(bin.join(b), "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(bin.join(b), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        // Present but not executable: not found, as LookPath.
        std::fs::write(bin.join("ethtool"), "").unwrap();
        let mut c = Checks::default();
        exec_checks(&mut c, &format!("/nonexistent:{}", bin.display()));
        assert_eq!(
            c.errors,
            vec![("FileExisting-iptables".to_string(), "iptables not found in system path".to_string())]
        );
        assert_eq!(
            c.warnings,
            vec![("FileExisting-ethtool".to_string(), "ethtool not found in system path".to_string())]
        );
        let e = c.finish(&[]).unwrap_err().to_string();
        assert!(e.contains("[ERROR FileExisting-iptables]: iptables not found in system path"), "{e}");
        let mut c = Checks::default();
        exec_checks(&mut c, "");
        assert_eq!(c.errors.len(), 4, "{:?}", c.errors);
        assert_eq!(c.warnings.len(), 5, "{:?}", c.warnings);
    }

    /// checks.go KubeletVersionCheck + GetKubeletVersion, constants.go MinimumKubeletVersion
    /// (kubeadm's minor - 3).
    #[test]
    fn kubelet_version_skew_as_kubeadm() {
        let v = |s: &str| KubeVersion::parse(s).unwrap();
        let kubeadm = v("v1.35.0");
        assert_eq!(kubelet_version_error(v("v1.35.0"), kubeadm, Some(v("v1.35.0"))), None);
        assert_eq!(kubelet_version_error(v("v1.34.3"), kubeadm, Some(v("v1.35.0"))), None);
        assert_eq!(
            kubelet_version_error(v("v1.36.1"), kubeadm, Some(v("v1.35.0"))).as_deref(),
            Some("the kubelet version is higher than the control plane version. This is not a supported version skew and may lead to a malfunctional cluster. Kubelet version: \"1.36.1\" Control plane version: \"1.35.0\"")
        );
        // A newer patch of the same minor is fine; join passes no control-plane version.
        assert_eq!(kubelet_version_error(v("v1.35.9"), kubeadm, Some(v("v1.35.0"))), None);
        assert_eq!(kubelet_version_error(v("v1.36.1"), kubeadm, None), None);
        assert_eq!(kubelet_version_error(v("v1.32.0"), kubeadm, None), None);
        assert_eq!(
            kubelet_version_error(v("v1.31.9"), kubeadm, None).as_deref(),
            Some("Kubelet version \"1.31.9\" is lower than kubeadm can support. Please upgrade kubelet")
        );
        assert_eq!(parse_kubelet_version("Kubernetes v1.35.0\n").unwrap(), v("v1.35.0"));
        assert!(parse_kubelet_version("kubelet 1.35").unwrap_err().contains("Unable to parse output from Kubelet"));
    }
}
