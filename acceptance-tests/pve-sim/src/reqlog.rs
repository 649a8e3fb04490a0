//! Request log: in memory for `GET /_sim/requests` and appended to
//! `requests.log` as JSON lines for post-mortems.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RequestEntry {
    /// Unix time (seconds, fractional) when the request arrived.
    pub ts: f64,
    pub method: String,
    pub path: String,
    /// HTTP status sent; 0 when the connection was reset without a response.
    pub status: u16,
    pub duration_ms: u64,
    /// The same in microseconds: most answers take well under a millisecond.
    #[serde(default)]
    pub duration_us: u64,
    /// Injected fault, if any: "5xx", "reset-before", "reset-after".
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub fault: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub user: Option<String>,
}

pub struct RequestLog {
    entries: Mutex<Vec<RequestEntry>>,
    file: Mutex<File>,
    path: PathBuf,
}

impl RequestLog {
    pub fn open(path: &Path) -> std::io::Result<RequestLog> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(RequestLog { entries: Mutex::new(Vec::new()), file: Mutex::new(file), path: path.into() })
    }

    pub fn record(&self, e: RequestEntry) {
        if let Ok(line) = serde_json::to_string(&e) {
            let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
            let _ = writeln!(f, "{line}");
        }
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).push(e);
    }

    pub fn entries(&self) -> Vec<RequestEntry> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Clears the in-memory log and truncates the file.
    pub fn clear(&self) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.clear();
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if let Ok(new) = OpenOptions::new().create(true).write(true).truncate(true).open(&self.path) {
            drop(new);
            if let Ok(reopened) = OpenOptions::new().append(true).open(&self.path) {
                *f = reopened;
            }
        }
    }
}
