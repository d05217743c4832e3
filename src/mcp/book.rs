//! What the MCP server keeps on disk, under `<runs>/.kling-batch-mcp/`: the sweeps it started
//! (`sweeps.jsonl`, append-only and fsynced: id, folder, manifest, cap, the command's service), the
//! secret its approvals are signed with, the manifests an agent sent as text, and each sweep's log.
//! A later server (after a restart, or another one on the same folder) finds all of it; the
//! money each started sweep may spend — its cap — counts against `--max-spend-total` for good.

use crate::util::money::Money;
use serde::{Deserialize, Serialize};
use std::fs::TryLockError;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The server's own folder inside the runs folder.
pub const OWN: &str = ".kling-batch-mcp";

/// One sweep this server (or an earlier one) started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepRecord {
    pub sweep_id: String,
    /// Its output folder, relative to the runs folder.
    pub out: String,
    /// The manifest it runs, relative to the runs folder.
    pub manifest: String,
    /// Its spend cap, µ¢.
    pub cap: u64,
    pub started_at: String,
    /// The process last started for it (0 while it waits for the human's confirmation).
    pub pid: u32,
    /// `Plan::content_digest` of the plan approved: the only plan it runs.
    #[serde(default)]
    pub digest: String,
    /// The approval it consumed (its MAC), never to start another sweep.
    #[serde(default)]
    pub approval: String,
    /// The estimate approved, µ¢, and its jobs.
    #[serde(default)]
    pub estimate: u64,
    #[serde(default)]
    pub jobs: usize,
    /// Whose consent started it: `elicitation` (the human, in the client), `terminal` (the human,
    /// `kling-batch mcp confirm`), `approval` (the agent's word, below --confirm-above), or
    /// `awaiting_human` (not started).
    #[serde(default)]
    pub consent: String,
    /// When its process was last started (RFC 3339), and how many jobs were completed then.
    #[serde(default)]
    pub launched_at: String,
    #[serde(default)]
    pub completed_at_launch: usize,
    /// The service it was approved for: the simulator, or RunAPI at this base URL (none: as
    /// `run` finds it).
    #[serde(default)]
    pub simulate: bool,
    #[serde(default)]
    pub api_base: Option<String>,
}

/// What `consent` says while a sweep waits for the human.
pub const AWAITING_HUMAN: &str = "awaiting_human";

impl SweepRecord {
    pub fn awaiting_human(&self) -> bool {
        self.consent == AWAITING_HUMAN
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{what} {path}: {source}")]
pub struct BookError {
    what: &'static str,
    path: PathBuf,
    source: std::io::Error,
}

impl BookError {
    /// The book's lock stayed held past the wait: another server has it.
    pub fn is_busy(&self) -> bool {
        self.what == BUSY
    }
}

const BUSY: &str = "the lock is busy:";
/// How long a tool call waits for the book's lock, and how often it tries.
pub const LOCK_WAIT: Duration = Duration::from_secs(10);
const LOCK_POLL: Duration = Duration::from_millis(20);

/// The runs folder and what the server keeps in it.
#[derive(Debug, Clone)]
pub struct Book {
    runs: PathBuf,
}

impl Book {
    /// The book of `runs` (created with its own folder if missing).
    pub fn open(runs: &Path) -> Result<Book, BookError> {
        let own = runs.join(OWN);
        for dir in [
            own.clone(),
            own.join("manifests"),
            own.join("logs"),
            own.join("plans"),
            own.join("exits"),
        ] {
            std::fs::create_dir_all(&dir).map_err(|source| BookError {
                what: "cannot make",
                path: dir.clone(),
                source,
            })?;
        }
        let runs = std::fs::canonicalize(runs).map_err(|source| BookError {
            what: "cannot find",
            path: runs.to_path_buf(),
            source,
        })?;
        Ok(Book { runs })
    }

    pub fn runs(&self) -> &Path {
        &self.runs
    }

    pub fn own(&self) -> PathBuf {
        self.runs.join(OWN)
    }

    /// Where the files a manifest names may lie: the runs folder, but for the server's own
    /// folder (its secret, its book) — save the manifests an agent sent as text.
    pub fn within(&self) -> crate::util::within::Within {
        crate::util::within::Within::new(&self.runs)
            .closing(&self.own())
            .reopening(&self.own().join("manifests"))
    }

    /// The frozen approved plan of a sweep (what its runs are given).
    pub fn plan_file(&self, sweep_id: &str) -> PathBuf {
        self.own().join("plans").join(format!("{sweep_id}.json"))
    }

    /// Where the server notes how process `pid` of a sweep ended (while it lived to see it).
    pub fn exit_file(&self, sweep_id: &str, pid: u32) -> PathBuf {
        self.own().join("exits").join(format!("{sweep_id}.{pid}"))
    }

    /// How process `pid` of a sweep ended, if the server saw it end.
    pub fn exit_of(&self, sweep_id: &str, pid: u32) -> Option<i32> {
        std::fs::read_to_string(self.exit_file(sweep_id, pid))
            .ok()
            .and_then(|t| t.trim().parse().ok())
    }

    /// The log of a sweep's runs.
    pub fn log_file(&self, sweep_id: &str) -> PathBuf {
        self.own().join("logs").join(format!("{sweep_id}.log"))
    }

    /// Whether an approval (its mark) has started a sweep already.
    pub fn approval_used(&self, mark: &str) -> Option<String> {
        self.sweeps()
            .into_iter()
            .find(|r| !mark.is_empty() && r.approval == mark)
            .map(|r| r.sweep_id)
    }

    /// Every sweep started, the latest record of each, in the order they were first started.
    pub fn sweeps(&self) -> Vec<SweepRecord> {
        let text = std::fs::read_to_string(self.own().join("sweeps.jsonl")).unwrap_or_default();
        let mut out: Vec<SweepRecord> = Vec::new();
        for line in text.lines() {
            let Ok(record) = serde_json::from_str::<SweepRecord>(line) else {
                continue; // a line cut by a crash
            };
            match out.iter_mut().find(|r| r.sweep_id == record.sweep_id) {
                Some(old) => *old = record,
                None => out.push(record),
            }
        }
        out
    }

    pub fn sweep(&self, id: &str) -> Option<SweepRecord> {
        self.sweeps().into_iter().find(|r| r.sweep_id == id)
    }

    /// What the started sweeps may spend in all: the sum of their caps.
    pub fn committed(&self) -> Money {
        self.sweeps().iter().map(|r| Money::from_micro_cents(r.cap)).sum()
    }

    /// Appends `record`, durably.
    pub fn record(&self, record: &SweepRecord) -> Result<(), BookError> {
        let path = self.own().join("sweeps.jsonl");
        let failed = |source| BookError {
            what: "cannot write",
            path: path.clone(),
            source,
        };
        let mut line = serde_json::to_vec(record).map_err(|e| failed(std::io::Error::other(e)))?;
        line.push(b'\n');
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(failed)?;
        file.write_all(&line).and_then(|()| file.sync_data()).map_err(failed)
    }

    /// Runs `f` holding the book's lock: one server at a time checks the total and records.
    /// Waits for it at most `LOCK_WAIT`: a server stopped (or paused) while it holds the lock
    /// would otherwise hang every other server's tool call until it woke.
    pub fn locked<T>(&self, f: impl FnOnce() -> T) -> Result<T, BookError> {
        self.locked_within(LOCK_WAIT, f)
    }

    /// `locked`, waiting at most `wait` for the lock (an error that `is_busy` after that).
    pub fn locked_within<T>(&self, wait: Duration, f: impl FnOnce() -> T) -> Result<T, BookError> {
        let path = self.own().join(".lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| BookError {
                what: "cannot open",
                path: path.clone(),
                source,
            })?;
        let deadline = Instant::now() + wait;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => std::thread::sleep(LOCK_POLL),
                Err(TryLockError::WouldBlock) => {
                    return Err(BookError {
                        what: BUSY,
                        path,
                        source: std::io::Error::new(
                            std::io::ErrorKind::WouldBlock,
                            format!(
                                "still held after {:.0} s, by another kling-batch mcp server starting or resuming a sweep (or stopped while it did)",
                                wait.as_secs_f64()
                            ),
                        ),
                    });
                }
                Err(TryLockError::Error(source)) => {
                    return Err(BookError {
                        what: "cannot lock",
                        path,
                        source,
                    });
                }
            }
        }
        let out = f();
        let _ = file.unlock();
        Ok(out)
    }

    /// The secret approvals are signed with: made once, kept (mode 0600) so that an approval
    /// outlives a restart of the server.
    pub fn secret(&self) -> Result<Vec<u8>, BookError> {
        let path = self.own().join("secret");
        if let Ok(bytes) = std::fs::read(&path)
            && bytes.len() >= 32
        {
            return Ok(bytes);
        }
        let mut bytes = vec![0u8; 32];
        let random =
            std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
        random.map_err(|source| BookError {
            what: "cannot read randomness for",
            path: path.clone(),
            source,
        })?;
        use std::os::unix::fs::OpenOptionsExt;
        let written = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| f.write_all(&bytes).and_then(|()| f.sync_all()));
        written.map_err(|source| BookError {
            what: "cannot write",
            path,
            source,
        })?;
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};

    /// Sends `signal` to `target` (a pid, or `-pgid` for a process group), as `kill -s` does.
    fn signal(target: &str, signal: &str) {
        let ok = Command::new("kill")
            .args(["-s", signal, "--", target])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -s {signal} {target}");
    }

    /// A server stopped while it holds the book's lock (here a real process holding it, then
    /// SIGSTOPped) makes another server's call fail once its wait is over — the lock named busy,
    /// what it guards never run — instead of hanging until the other wakes; once the holder is
    /// gone, the lock is taken at once.
    #[test]
    fn a_lock_held_by_a_stopped_process_is_reported_busy_after_the_wait() {
        let dir = tempfile::tempdir().unwrap();
        let book = Book::open(dir.path()).unwrap();
        let lock = book.own().join(".lock");
        // `flock -o`: the lock is held by flock itself, not by the command it waits for.
        let holder = Command::new("flock")
            .arg("-o")
            .arg(&lock)
            .args(["sleep", "120"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("flock (util-linux) runs");
        let group = format!("-{}", holder.id());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let probe = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock)
                .unwrap();
            match probe.try_lock() {
                Err(TryLockError::WouldBlock) => break,
                Ok(()) => {
                    let _ = probe.unlock();
                    assert!(Instant::now() < deadline, "flock never took the lock");
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(TryLockError::Error(e)) => panic!("{e}"),
            }
        }
        signal(&holder.id().to_string(), "STOP");
        let wait = Duration::from_millis(300);
        let asked = Instant::now();
        let mut ran = false;
        let refused = book.locked_within(wait, || ran = true);
        let err = refused.expect_err("the lock is held");
        assert!(err.is_busy(), "{err}");
        assert!(!ran, "what the lock guards did not run");
        assert!(asked.elapsed() >= wait, "it waited its time first");
        assert!(err.to_string().contains("stopped while it did"), "{err}");
        // The holder gone (killed while stopped; its lock goes with it): free again.
        signal(&group, "KILL");
        let mut holder = holder;
        let _ = holder.wait();
        book.locked_within(Duration::from_secs(30), || ran = true).unwrap();
        assert!(ran);
    }
}
