//! Tasks (UPIDs): long operations answer with a task id; its outcome is only known once
//! its status is `stopped`.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::client::{Client, Idempotent};
use crate::error::{Error, Result};

/// How many log lines to put into a task failure.
const LOG_TAIL: usize = 20;
/// Resubmissions after a task failed on a lock held by someone else.
const LOCK_RETRIES: u32 = 10;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskStatus {
    pub upid: String,
    pub exitstatus: String,
}

/// The node a UPID belongs to (`UPID:NODE:...`).
pub fn upid_node(upid: &str) -> Option<&str> {
    upid.strip_prefix("UPID:")?.split(':').next()
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

impl Client {
    /// Polls until the task stops (backoff 50 ms .. 1 s). `OK` and `WARNINGS: N` are
    /// success; anything else fails with the tail of the task log.
    pub async fn wait_task(&self, upid: &str) -> Result<TaskStatus> {
        let node = upid_node(upid)
            .ok_or_else(|| Error::Decode { op: "task".into(), message: format!("not a UPID: {upid}") })?;
        let path = format!("/nodes/{node}/tasks/{}/status", enc(upid));
        let mut delay = Duration::from_millis(50);
        loop {
            let st = self.get(&path, &[]).await?;
            if st.get("status").and_then(Value::as_str) == Some("stopped") {
                let exit = st.get("exitstatus").and_then(Value::as_str).unwrap_or("unknown").to_string();
                if exit == "OK" || exit.starts_with("WARNINGS") {
                    return Ok(TaskStatus { upid: upid.to_string(), exitstatus: exit });
                }
                let log_tail = self.task_log_tail(node, upid).await.unwrap_or_default();
                return Err(Error::Task { upid: upid.to_string(), exitstatus: exit, log_tail });
            }
            self.sleep("proxmox_task", delay).await?;
            delay = (delay * 2).min(Duration::from_secs(1));
        }
    }

    async fn task_log_tail(&self, node: &str, upid: &str) -> Result<Vec<String>> {
        let path = format!("/nodes/{node}/tasks/{}/log", enc(upid));
        // The log endpoint pages from the start; ask for plenty and keep the end.
        let lines = self.get(&path, &[("limit", "1000".to_string())]).await?;
        let mut out: Vec<String> = lines
            .as_array()
            .map(|a| a.iter().filter_map(|l| l.get("t").and_then(Value::as_str).map(str::to_string)).collect())
            .unwrap_or_default();
        let skip = out.len().saturating_sub(LOG_TAIL);
        out.drain(..skip);
        Ok(out)
    }

    /// Sends a write that starts a task and waits for it. A task that failed because
    /// the VM's lock was busy changed nothing, so it is submitted again (bounded).
    /// Writes answered synchronously (`data` is not a UPID) return at once.
    pub async fn run_task(
        &self,
        method: Method,
        path: &str,
        form: &[(&str, String)],
        idem: Idempotent,
    ) -> Result<Option<TaskStatus>> {
        let mut attempt = 0;
        loop {
            let data = self.write(method.clone(), path, form, idem).await?;
            let Some(upid) = data.as_str().filter(|s| s.starts_with("UPID:")) else { return Ok(None) };
            match self.wait_task(upid).await {
                Ok(st) => return Ok(Some(st)),
                Err(e) if e.is_lock() && attempt < LOCK_RETRIES => {
                    attempt += 1;
                    tracing::debug!(path, attempt, "task hit a busy lock; resubmitting");
                    self.sleep("proxmox_retry", self.inner.cfg.retry.delay(attempt)).await?;
                }
                Err(e) => return Err(e),
            }
        }
    }
}
