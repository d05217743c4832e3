//! Reading a journal back. A torn last line (a crash mid-write) is expected and cut away; a bad
//! line anywhere before the end is corruption, reported with its line number and never skipped.

use super::record::{Record, VERSION};
use std::io::BufRead;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot read {}: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}:{line}: the journal is corrupt ({reason})", .path.display())]
    Corrupt { path: PathBuf, line: usize, reason: String },
    #[error("{}:{line}: written by a newer kling-batch (journal version {version})", .path.display())]
    TooNew { path: PathBuf, line: usize, version: u64 },
}

impl JournalError {
    pub fn hint(&self) -> &'static str {
        match self {
            JournalError::Io { .. } => "check the output folder's permissions",
            JournalError::Corrupt { .. } => {
                "rerun with --repair-journal: it keeps every intact record (the run's keys and task ids, so nothing is paid twice) and sets the damaged lines aside; do not move the journal away, which would pay for every job again"
            }
            JournalError::TooNew { .. } => "resume this folder with the newer kling-batch that wrote it",
        }
    }
}

/// What reading found besides the records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Bytes of a torn last line that were cut away.
    pub torn_tail_bytes: u64,
    /// The length of the intact part: appends continue from here.
    pub valid_len: u64,
}

/// The records of the journal at `path` (none if it does not exist yet).
pub fn read(path: &Path) -> Result<(Vec<Record>, Recovery), JournalError> {
    let mut records = Vec::new();
    let recovery = read_each(path, |r| records.push(r))?;
    Ok((records, recovery))
}

/// Hands each record of the journal at `path` to `each` as it is read, holding one line at a time
/// (a 100,000-job journal is tens of megabytes).
pub fn read_each(path: &Path, each: impl FnMut(Record)) -> Result<Recovery, JournalError> {
    match std::fs::File::open(path) {
        Ok(f) => scan(std::io::BufReader::with_capacity(256 * 1024, f), path, each),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Recovery::default()),
        Err(source) => Err(JournalError::Io {
            path: path.into(),
            source,
        }),
    }
}

/// What the latest run in a folder started with.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LastRun {
    /// The spend cap in µ¢.
    pub cap: Option<u64>,
    pub settings: Option<super::RecordedSettings>,
    /// The manifest as that run was given it.
    pub manifest: Option<String>,
}

/// The journal's last `run_started` record, read cheaply (only those lines are parsed): what a
/// resume needs before anything else starts. `None` without a journal or such a record.
pub fn last_run_started(path: &Path) -> Option<LastRun> {
    let file = std::fs::File::open(path).ok()?;
    let mut reader = std::io::BufReader::with_capacity(256 * 1024, file);
    let mut line = Vec::new();
    let mut last = None;
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return last,
            Ok(_) => {}
        }
        if line.windows(13).any(|w| w == b"\"run_started\"")
            && let Ok(Some(Record::RunStarted {
                cap,
                settings,
                manifest,
                ..
            })) = parse_line(line.trim_ascii_end())
        {
            last = Some(LastRun {
                cap,
                settings,
                manifest,
            });
        }
    }
}

/// What `repair` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repaired {
    pub kept: usize,
    pub set_aside: usize,
    /// Where the damaged lines went (none if there were none).
    pub aside: Option<PathBuf>,
}

/// Rewrites the journal at `path` with every intact record, in order, and moves the lines that
/// cannot be read into `<path>.damaged-<unix seconds>` beside it. A record from a newer version
/// is not damage: it stops the repair. The new journal replaces the old one atomically.
pub fn repair(path: &Path) -> Result<Repaired, JournalError> {
    let io = |source| JournalError::Io {
        path: path.into(),
        source,
    };
    let bytes = std::fs::read(path).map_err(io)?;
    let mut kept = Vec::with_capacity(bytes.len());
    let mut damaged = Vec::new();
    let (mut kept_count, mut damaged_count) = (0usize, 0usize);
    for (i, line) in bytes.split_inclusive(|b| *b == b'\n').enumerate() {
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        match parse_line(text) {
            Ok(Some(_)) => {
                kept.extend_from_slice(text);
                kept.push(b'\n');
                kept_count += 1;
            }
            Ok(None) => {}
            Err(LineError::TooNew(version)) => {
                return Err(JournalError::TooNew {
                    path: path.into(),
                    line: i + 1,
                    version,
                });
            }
            Err(LineError::Syntax(_)) => {
                damaged.extend_from_slice(text);
                damaged.push(b'\n');
                damaged_count += 1;
            }
        }
    }
    let aside = if damaged_count > 0 {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let aside = path.with_extension(format!("jsonl.damaged-{stamp}"));
        std::fs::write(&aside, &damaged).map_err(io)?;
        Some(aside)
    } else {
        None
    };
    let temporary = path.with_extension("jsonl.repairing");
    let _ = std::fs::remove_file(&temporary);
    {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temporary)
            .map_err(io)?;
        file.write_all(&kept).map_err(io)?;
        file.sync_all().map_err(io)?;
    }
    std::fs::rename(&temporary, path).map_err(io)?;
    if let Some(dir) = path.parent()
        && let Ok(dir) = std::fs::File::open(dir)
    {
        let _ = dir.sync_all();
    }
    Ok(Repaired {
        kept: kept_count,
        set_aside: damaged_count,
        aside,
    })
}

/// Parses journal bytes that did not come from a file (fuzzing, tests).
pub fn parse_bytes(bytes: &[u8]) -> Result<(Vec<Record>, Recovery), JournalError> {
    parse(bytes, Path::new("journal.jsonl"))
}

/// Parses journal bytes (the pure part of `read`).
pub(super) fn parse(bytes: &[u8], path: &Path) -> Result<(Vec<Record>, Recovery), JournalError> {
    let mut records = Vec::new();
    let recovery = scan(bytes, path, |r| records.push(r))?;
    Ok((records, recovery))
}

fn scan(mut input: impl BufRead, path: &Path, mut each: impl FnMut(Record)) -> Result<Recovery, JournalError> {
    let io = |source| JournalError::Io {
        path: path.into(),
        source,
    };
    let mut line = Vec::new();
    let mut offset = 0u64;
    let mut line_no = 0usize;
    loop {
        line.clear();
        let n = input.read_until(b'\n', &mut line).map_err(io)?;
        if n == 0 {
            return Ok(Recovery {
                torn_tail_bytes: 0,
                valid_len: offset,
            });
        }
        line_no += 1;
        let ended = line.last() == Some(&b'\n');
        let text = if ended { &line[..n - 1] } else { &line[..] };
        match parse_line(text) {
            Ok(Some(record)) => each(record),
            Ok(None) => {}
            Err(reason) => {
                if !ended || input.fill_buf().map_err(io)?.is_empty() {
                    // A torn or garbled final line: cut it away, appends resume before it.
                    return Ok(Recovery {
                        torn_tail_bytes: n as u64,
                        valid_len: offset,
                    });
                }
                if let LineError::TooNew(version) = reason {
                    return Err(JournalError::TooNew {
                        path: path.into(),
                        line: line_no,
                        version,
                    });
                }
                return Err(JournalError::Corrupt {
                    path: path.into(),
                    line: line_no,
                    reason: reason.to_string(),
                });
            }
        }
        offset += n as u64;
    }
}

#[derive(Debug)]
enum LineError {
    Syntax(String),
    TooNew(u64),
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LineError::Syntax(s) => f.write_str(s),
            LineError::TooNew(v) => write!(f, "version {v}"),
        }
    }
}

fn parse_line(line: &[u8]) -> Result<Option<Record>, LineError> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    // The version first (a pass that allocates nothing), so a newer record is never misread.
    #[derive(serde::Deserialize)]
    struct Version {
        v: Option<u64>,
    }
    let version = serde_json::from_slice::<Version>(line)
        .map_err(|e| LineError::Syntax(e.to_string()))?
        .v
        .ok_or_else(|| LineError::Syntax("no version".into()))?;
    if version > u64::from(VERSION) {
        return Err(LineError::TooNew(version));
    }
    serde_json::from_slice(line)
        .map(Some)
        .map_err(|e| LineError::Syntax(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(job: &str) -> String {
        Record::TimedOut {
            job: job.into(),
            task_id: "t".into(),
            at: "x".into(),
        }
        .to_line()
            + "\n"
    }

    #[test]
    fn a_torn_tail_is_cut_and_reported() {
        let torn = "{\"v\":1,\"t\":\"sub";
        let text = format!("{}{}{torn}", line("a"), line("b"));
        let (records, recovery) = parse(text.as_bytes(), Path::new("j")).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(recovery.torn_tail_bytes as usize, torn.len());
        assert_eq!(recovery.valid_len as usize, text.len() - torn.len());
    }

    #[test]
    fn corruption_in_the_middle_is_an_error_with_its_line() {
        let text = format!("{}garbage\n{}", line("a"), line("b"));
        let err = parse(text.as_bytes(), Path::new("j")).unwrap_err();
        assert!(matches!(err, JournalError::Corrupt { line: 2, .. }), "{err}");
        let newer = format!("{}{{\"v\":9,\"t\":\"x\"}}\n{}", line("a"), line("b"));
        assert!(matches!(
            parse(newer.as_bytes(), Path::new("j")).unwrap_err(),
            JournalError::TooNew { version: 9, .. }
        ));
    }

    #[test]
    fn every_record_round_trips() {
        let r = Record::Submitting {
            job: "j".into(),
            attempt: 2,
            key: "k".into(),
            reserve: 70_000_000,
            body: None,
            send_until: None,
            at: "t".into(),
        };
        let begun = Record::UploadBegun {
            job: "j".into(),
            object: "videos/j.mp4".into(),
            upload_id: "u-1".into(),
            at: "t".into(),
        };
        let ended = Record::UploadEnded {
            job: "j".into(),
            upload_id: "u-1".into(),
            at: "t".into(),
        };
        let text = format!("{}\n{}\n{}\n", r.to_line(), begun.to_line(), ended.to_line());
        let (records, _) = parse(text.as_bytes(), Path::new("j")).unwrap();
        assert_eq!(records, vec![r, begun.clone(), ended.clone()]);
        let mut facts = crate::journal::JobFacts::default();
        facts.apply(&begun);
        assert_eq!(facts.open_uploads(), [("videos/j.mp4".to_string(), "u-1".to_string())]);
        facts.apply(&ended);
        assert!(facts.open_uploads().is_empty());
    }
}
