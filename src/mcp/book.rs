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
    /// The process last started for it.
    pub pid: u32,
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
        for dir in [own.clone(), own.join("manifests"), own.join("logs")] {
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
