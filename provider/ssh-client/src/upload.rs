//! Atomic file upload and file reads, implemented with exec + stdin so they
//! work through `sudo` for root-owned paths.

use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::exec::{shell_quote, Client};

/// read_file's "no such file" exit code; `cat` itself only exits 0 or 1.
const ABSENT: u32 = 44;

impl Client {
    /// Replaces `path` atomically with `contents`: the bytes go to a private
    /// temp file in the same directory, which is fsynced, given `mode` and
    /// owner/group, then renamed over `path`. Readers see the old or the new
    /// file, never a partial one; on failure the temp file is removed.
    pub async fn upload(
        &self,
        path: &str,
        contents: &[u8],
        mode: u32,
        owner: Option<&str>,
        group: Option<&str>,
    ) -> Result<(), Error> {
        self.upload_maybe_cancellable(path, contents, mode, owner, group, None).await
    }

    /// [`Client::upload`] that stops (killing the remote writer) when `cancel` fires.
    /// The target file is then unchanged; a stray `.strata-upload.*` temp file may remain.
    pub async fn upload_cancellable(
        &self,
        path: &str,
        contents: &[u8],
        mode: u32,
        owner: Option<&str>,
        group: Option<&str>,
        cancel: &CancellationToken,
    ) -> Result<(), Error> {
        self.upload_maybe_cancellable(path, contents, mode, owner, group, Some(cancel)).await
    }

    async fn upload_maybe_cancellable(
        &self,
        path: &str,
        contents: &[u8],
        mode: u32,
        owner: Option<&str>,
        group: Option<&str>,
        cancel: Option<&CancellationToken>,
    ) -> Result<(), Error> {
        let bad = |reason: String| Err(Error::Config { host: self.label().to_string(), reason });
        if !path.starts_with('/') || path.ends_with('/') || path.contains('\0') {
            return bad(format!("upload path {path:?} must be an absolute file path"));
        }
        if mode > 0o7777 {
            return bad(format!("file mode {mode:o} is out of range"));
        }
        let is_name = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        for name in [owner, group].into_iter().flatten() {
            if !is_name(name) {
                return bad(format!("invalid owner/group name {name:?}"));
            }
        }
        let dir = match path.rsplit_once('/') {
            Some(("", _)) => "/",
            Some((d, _)) => d,
            None => unreachable!("path is absolute"),
        };
        let chown = match (owner, group) {
            (Some(o), Some(g)) => format!("chown -- {} \"$tmp\"\n", shell_quote(&format!("{o}:{g}"))),
            (Some(o), None) => format!("chown -- {} \"$tmp\"\n", shell_quote(o)),
            (None, Some(g)) => format!("chgrp -- {} \"$tmp\"\n", shell_quote(g)),
            (None, None) => String::new(),
        };
        // mktemp creates the file 0600, so nobody reads it half-written.
        // `sync FILE`/`sync DIR` fsync the data and then the rename.
        let script = format!(
            "set -e\n\
             tmp=$(mktemp {dir_q}/.strata-upload.XXXXXXXX)\n\
             trap 'rm -f -- \"$tmp\"' EXIT\n\
             cat > \"$tmp\"\n\
             chmod {mode:o} \"$tmp\"\n\
             {chown}\
             sync -- \"$tmp\"\n\
             mv -f -- \"$tmp\" {path_q}\n\
             trap - EXIT\n\
             sync -- {dir_q}\n",
            dir_q = shell_quote(dir),
            path_q = shell_quote(path),
        );
        let out =
            self.exec_maybe_cancellable(&format!("sh -c {}", shell_quote(&script)), Some(contents), cancel).await?;
        self.check(out, &format!("upload of {path}")).map(|_| ())
    }

    /// The content of `path`, or `None` if it does not exist.
    pub async fn read_file(&self, path: &str) -> Result<Option<Vec<u8>>, Error> {
        self.read_file_maybe_cancellable(path, None).await
    }

    /// [`Client::read_file`] that stops when `cancel` fires.
    pub async fn read_file_cancellable(
        &self,
        path: &str,
        cancel: &CancellationToken,
    ) -> Result<Option<Vec<u8>>, Error> {
        self.read_file_maybe_cancellable(path, Some(cancel)).await
    }

    async fn read_file_maybe_cancellable(
        &self,
        path: &str,
        cancel: Option<&CancellationToken>,
    ) -> Result<Option<Vec<u8>>, Error> {
        if path.contains('\0') {
            return Err(Error::Config { host: self.label().to_string(), reason: "path contains a NUL byte".into() });
        }
        let p = shell_quote(path);
        let script = format!("if [ ! -e {p} ] && [ ! -L {p} ]; then exit {ABSENT}; fi; exec cat -- {p}");
        let out = self.exec_maybe_cancellable(&format!("sh -c {}", shell_quote(&script)), None, cancel).await?;
        if out.exit_status == ABSENT && out.exit_signal.is_none() {
            return Ok(None);
        }
        self.check(out, &format!("read of {path}")).map(|o| Some(o.stdout))
    }
}
