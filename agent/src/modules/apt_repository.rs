//! `apt_repository "name" { uris suites components key trusted }`: a deb822
//! source `/etc/apt/sources.list.d/<name>.sources` whose `Signed-By` points at
//! the key written to `/etc/apt/keyrings/<name>.asc` (armored) or `.gpg`
//! (binary), or `Trusted: yes` for an unsigned local mirror. A change marks
//! the package lists stale so the next package install runs `apt-get update`.

use crate::fsutil::{atomic_write, FileState};
use crate::modules::package::LISTS_STALE;
use crate::spec::{AptRepositorySpec, Keyring, NodeSpec};
use crate::task::{Change, Context, Task, TaskError};

pub const SOURCES_DIR: &str = "/etc/apt/sources.list.d";
pub const KEYRINGS_DIR: &str = "/etc/apt/keyrings";

pub struct AptRepositoryTask {
    pub name: String,
    pub spec: AptRepositorySpec,
}

impl AptRepositoryTask {
    pub fn new(name: &str, spec: &AptRepositorySpec) -> Self {
        AptRepositoryTask { name: name.to_string(), spec: spec.clone() }
    }
    fn err(&self, key: &str, msg: impl std::fmt::Display) -> TaskError {
        TaskError::new(format!("apt_repository.{}.{key}: {msg}", self.name))
    }
    pub fn sources_path(&self) -> String {
        format!("{SOURCES_DIR}/{}.sources", self.name)
    }

    /// The source file and, when signed, its keyring.
    pub fn files(&self) -> Result<Vec<FileState>, TaskError> {
        let spec = NodeSpec { apt_repository: [(self.name.clone(), self.spec.clone())].into(), ..Default::default() };
        spec.check().map_err(|(key, msg)| TaskError::new(format!("{}: {msg}", key.join("."))))?;
        let s = &self.spec;
        let mut src = String::from("# Managed by strata-agent.\nTypes: deb\n");
        src.push_str(&format!("URIs: {}\nSuites: {}\n", s.uris.join(" "), s.suites.join(" ")));
        if !s.components.is_empty() {
            src.push_str(&format!("Components: {}\n", s.components.join(" ")));
        }
        if !s.architectures.is_empty() {
            src.push_str(&format!("Architectures: {}\n", s.architectures.join(" ")));
        }
        let mut files = vec![];
        match s.keyring().map_err(|e| self.err("key", e))? {
            None => src.push_str("Trusted: yes\n"),
            Some(k) => {
                let (path, bytes) = match k {
                    Keyring::Armored(b) => (format!("{KEYRINGS_DIR}/{}.asc", self.name), b),
                    Keyring::Binary(b) => (format!("{KEYRINGS_DIR}/{}.gpg", self.name), b),
                };
                src.push_str(&format!("Signed-By: {path}\n"));
                files.push(FileState::new(path, bytes).with_mode(0o644));
            }
        }
        files.insert(0, FileState::new(self.sources_path(), src).with_mode(0o644));
        Ok(files)
    }
}

impl Task for AptRepositoryTask {
    fn name(&self) -> String {
        format!("apt_repository {}", self.name)
    }
    fn module(&self) -> &'static str {
        "apt_repository"
    }
    fn check(&self, ctx: &Context) -> Result<Vec<Change>, TaskError> {
        crate::fsutil::check_files(&self.files()?, &ctx.root)
    }
    fn apply(&self, ctx: &Context) -> Result<(), TaskError> {
        let files = self.files()?;
        if crate::fsutil::check_files(&files, &ctx.root)?.is_empty() {
            return Ok(());
        }
        // Marked before the source is written: a run that dies in between still updates next time.
        atomic_write(&ctx.path(LISTS_STALE), b"", 0o644, None).map_err(|e| self.err("uris", e))?;
        crate::fsutil::apply_files(&files, &ctx.root)
    }
    fn managed(&self) -> Vec<crate::managed::Managed> {
        self.files().unwrap_or_default().into_iter().map(|f| crate::managed::Managed::File(f.path)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::testutil;
    use base64::Engine;

    const ARMORED: &str = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQENBGMHoXcBCADukGOEQyleViOgtkMVa7hKifP6POCTh+98xNW4TfHK/nBJN2sm\n-----END PGP PUBLIC KEY BLOCK-----\n";

    fn k8s() -> AptRepositorySpec {
        AptRepositorySpec {
            uris: vec!["https://pkgs.k8s.io/core:/stable:/v1.35/deb/".into()],
            suites: vec!["/".into()],
            key: Some(ARMORED.into()),
            ..Default::default()
        }
    }

    #[test]
    fn pkgs_k8s_io_source_with_armored_key_marks_lists_stale() {
        let (d, ctx) = testutil::root();
        let t = AptRepositoryTask::new("kubernetes", &k8s());
        let whats: Vec<String> = t.check(&ctx).unwrap().into_iter().map(|c| c.what).collect();
        assert_eq!(
            whats,
            vec!["create /etc/apt/sources.list.d/kubernetes.sources", "create /etc/apt/keyrings/kubernetes.asc"]
        );
        t.apply(&ctx).unwrap();
        assert_eq!(
            std::fs::read_to_string(d.path().join("etc/apt/sources.list.d/kubernetes.sources")).unwrap(),
            "# Managed by strata-agent.\nTypes: deb\nURIs: https://pkgs.k8s.io/core:/stable:/v1.35/deb/\nSuites: /\nSigned-By: /etc/apt/keyrings/kubernetes.asc\n"
        );
        assert_eq!(std::fs::read_to_string(d.path().join("etc/apt/keyrings/kubernetes.asc")).unwrap(), ARMORED);
        assert!(ctx.path(LISTS_STALE).exists());
        // Converged: nothing to do, and the marker is not set again.
        std::fs::remove_file(ctx.path(LISTS_STALE)).unwrap();
        assert!(t.check(&ctx).unwrap().is_empty());
        t.apply(&ctx).unwrap();
        assert!(!ctx.path(LISTS_STALE).exists());
        // The source file is valid deb822.
        let text = std::fs::read_to_string(d.path().join("etc/apt/sources.list.d/kubernetes.sources")).unwrap();
        let doc: deb822_lossless::Deb822 = text.parse().unwrap();
        assert_eq!(doc.paragraphs().next().unwrap().get("Suites").as_deref(), Some("/"));
    }

    #[test]
    fn binary_key_and_trusted_local_mirror() {
        let (d, ctx) = testutil::root();
        let bin = [0x99u8, 0x01, 0x0d, 0x04, 0xff];
        let spec = AptRepositorySpec {
            key: Some(base64::engine::general_purpose::STANDARD.encode(bin)),
            suites: vec!["bookworm".into()],
            components: vec!["main".into()],
            ..k8s()
        };
        AptRepositoryTask::new("k", &spec).apply(&ctx).unwrap();
        assert_eq!(std::fs::read(d.path().join("etc/apt/keyrings/k.gpg")).unwrap(), bin);
        let mirror = AptRepositorySpec {
            uris: vec!["http://10.0.0.1/debian".into()],
            suites: vec!["bookworm".into()],
            components: vec!["main".into()],
            trusted: true,
            ..Default::default()
        };
        AptRepositoryTask::new("local", &mirror).apply(&ctx).unwrap();
        let text = std::fs::read_to_string(d.path().join("etc/apt/sources.list.d/local.sources")).unwrap();
        assert!(text.contains("Trusted: yes\n") && !text.contains("Signed-By"), "{text}");
    }

    #[test]
    fn errors_name_the_key() {
        let (_d, ctx) = testutil::root();
        let cases = [
            (AptRepositorySpec { key: None, ..k8s() }, "apt_repository.r.key"),
            (AptRepositorySpec { trusted: true, ..k8s() }, "apt_repository.r.trusted"),
            (AptRepositorySpec { key: Some("not base64!".into()), ..k8s() }, "apt_repository.r.key"),
            (AptRepositorySpec { components: vec!["main".into()], ..k8s() }, "apt_repository.r.components"),
            (AptRepositorySpec { uris: vec![], ..k8s() }, "apt_repository.r.uris"),
            (AptRepositorySpec { suites: vec!["a b".into()], ..k8s() }, "apt_repository.r.suites"),
        ];
        for (spec, key) in cases {
            let e = AptRepositoryTask::new("r", &spec).check(&ctx).unwrap_err().to_string();
            assert!(e.starts_with(key), "{key}: {e}");
        }
        assert!(AptRepositoryTask::new("../x", &k8s()).check(&ctx).is_err());
    }
}
