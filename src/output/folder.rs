//! The output folder, which is also the checkpoint: the journal, `results.csv`, `videos/`, a copy
//! of the manifest, and a lock so two runs never share it. Every file is written inside it, and
//! whole files are written atomically (temporary file, fsync, rename).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const JOURNAL: &str = "journal.jsonl";
pub const RESULTS: &str = "results.csv";
pub const REPORT: &str = "report.html";
pub const VIDEOS: &str = "videos";
const LOCK: &str = ".lock";
/// Everything kling-batch writes at the top of an output folder.
const OWN_ENTRIES: &[&str] = &[
    VIDEOS,
    JOURNAL,
    LOCK,
    RESULTS,
    REPORT,
    "summary.json",
    "manifest.yaml",
    "manifest.yml",
    "manifest.csv",
];

#[derive(Debug, thiserror::Error)]
pub enum OutDirError {
    #[error("cannot use {} as the output folder: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("another kling-batch run is using {}", .path.display())]
    Locked { path: PathBuf },
    #[error("{} is a symlink: kling-batch never writes through links inside its output folder", .path.display())]
    Symlink { path: PathBuf },
}

impl OutDirError {
    pub fn hint(&self) -> &'static str {
        match self {
            OutDirError::Io { .. } => "choose a folder you can write to with --out",
            OutDirError::Locked { .. } => "wait for it to finish, or give this run another --out folder",
            OutDirError::Symlink { .. } => {
                "replace the link with a real folder or file (or remove it), or point --out at where it leads"
            }
        }
    }
}

#[derive(Debug)]
pub struct OutDir {
    root: PathBuf,
    _lock: File,
}

impl OutDir {
    /// Creates (if needed) and locks the folder. The folder itself may be a link the user made;
    /// the entries kling-batch writes inside it may not (a `videos/` replaced by a symlink would
    /// send every video elsewhere).
    pub fn open(root: &Path) -> Result<OutDir, OutDirError> {
        OutDir::open_with(root, false)
    }

    /// Opens the folder as one of several workers of a shared sweep (`--state`): they share it (a
    /// shared lock), while a run of its own is kept out (and keeps them out).
    pub fn open_shared(root: &Path) -> Result<OutDir, OutDirError> {
        OutDir::open_with(root, true)
    }

    fn open_with(root: &Path, shared: bool) -> Result<OutDir, OutDirError> {
        let io = |source| OutDirError::Io {
            path: root.to_path_buf(),
            source,
        };
        for name in OWN_ENTRIES {
            let path = root.join(name);
            if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(OutDirError::Symlink { path });
            }
        }
        std::fs::create_dir_all(root.join(VIDEOS)).map_err(io)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(root.join(LOCK))
            .map_err(io)?;
        let locked = if shared {
            lock.try_lock_shared()
        } else {
            lock.try_lock()
        };
        match locked {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(OutDirError::Locked {
                    path: root.to_path_buf(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        if !shared {
            let _ = lock.set_len(0);
            let _ = (&lock).write_all(format!("{}\n", std::process::id()).as_bytes());
        }
        Ok(OutDir {
            root: root.to_path_buf(),
            _lock: lock,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    pub fn videos(&self) -> PathBuf {
        self.root.join(VIDEOS)
    }

    /// Replaces `name` with `bytes` atomically.
    pub fn write_atomic(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        self.write_atomic_with(name, |w| w.write_all(bytes))
    }

    /// Like `write_atomic`, for content written as it is produced (a 100,000-row results.csv is
    /// never held in memory).
    pub fn write_atomic_with(
        &self,
        name: &str,
        content: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let target = self.root.join(name);
        // This writer's own temporary file: the workers of a shared sweep write the same documents
        // at once, and none may remove, fill or rename another's. Made new (never a planted
        // symlink followed), filled, synced, then renamed over the name in one step, so the
        // document at the name is always some writer's whole one.
        let (temporary, file) = own_temporary(&self.root, name)?;
        let written = (|| {
            let mut file = std::io::BufWriter::with_capacity(128 * 1024, file);
            content(&mut file)?;
            let file = file.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            drop(file);
            crate::util::crash::point("results.before_rename");
            std::fs::rename(&temporary, &target)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&temporary);
        }
        written?;
        if let Ok(dir) = File::open(&self.root) {
            let _ = dir.sync_all();
        }
        Ok(())
    }

    /// Partial downloads left by an interrupted run.
    pub fn stray_parts(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.videos())
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "part"))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A temporary file for `name` that is this writer's alone: `.NAME.PID-N.tmp`, made new.
fn own_temporary(root: &Path, name: &str) -> std::io::Result<(PathBuf, File)> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    loop {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let temporary = root.join(format!(".{name}.{}-{n}.tmp", std::process::id()));
        match OpenOptions::new().write(true).create_new(true).open(&temporary) {
            Ok(file) => return Ok((temporary, file)),
            // Left by a writer that had this pid before and was killed: take the next number.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Whether `entry` is a temporary file `write_atomic` makes for `name`.
pub fn is_temporary_of(entry: &str, name: &str) -> bool {
    entry
        .strip_prefix('.')
        .and_then(|rest| rest.strip_prefix(name))
        .and_then(|rest| rest.strip_prefix('.'))
        .and_then(|rest| rest.strip_suffix(".tmp"))
        .is_some_and(|tag| {
            tag.split_once('-')
                .is_some_and(|(pid, n)| pid.parse::<u32>().is_ok() && n.parse::<u64>().is_ok())
        })
}

/// Expands `{date}` (2026-11-21), `{time}` (153012) and `{datetime}` (2026-11-21T153012) in an
/// output path, in UTC, so a nightly job can write to `runs/{date}`.
pub fn expand_template(path: &Path, now: std::time::SystemTime) -> PathBuf {
    let text = path.to_string_lossy();
    if !text.contains('{') {
        return path.to_path_buf();
    }
    let stamp = crate::util::time_format::rfc3339(now);
    let date = &stamp[..10];
    let time: String = stamp[11..19].chars().filter(|c| *c != ':').collect();
    PathBuf::from(
        text.replace("{datetime}", &format!("{date}T{time}"))
            .replace("{date}", date)
            .replace("{time}", &time),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_templates() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_784_764_800 + 3_723);
        assert_eq!(
            expand_template(Path::new("runs/{date}"), t),
            PathBuf::from("runs/2026-07-23")
        );
        assert_eq!(
            expand_template(Path::new("r/{datetime}-x"), t),
            PathBuf::from("r/2026-07-23T010203-x")
        );
        assert_eq!(expand_template(Path::new("plain"), t), PathBuf::from("plain"));
    }

    #[test]
    fn one_run_per_folder() {
        let dir = tempfile::tempdir().unwrap();
        let first = OutDir::open(dir.path()).unwrap();
        assert!(matches!(OutDir::open(dir.path()), Err(OutDirError::Locked { .. })));
        first.write_atomic("results.csv", b"a\n").unwrap();
        assert_eq!(std::fs::read(dir.path().join("results.csv")).unwrap(), b"a\n");
        drop(first);
        assert!(OutDir::open(dir.path()).is_ok(), "the lock goes with the run");
    }
}

#[cfg(test)]
mod writers_tests {
    use super::*;

    /// A document some writer completed: every row of one writer, in order, and nothing else.
    fn whole(bytes: &[u8], rows: usize) -> bool {
        let text = String::from_utf8_lossy(bytes);
        let lines: Vec<&str> = text.lines().collect();
        lines.len() == rows + 1
            && lines[0] == "writer,row"
            && lines[1..].iter().enumerate().all(|(i, l)| {
                l.split_once(',')
                    .is_some_and(|(w, r)| w == lines[1].split(',').next().unwrap_or("") && r == i.to_string())
            })
    }

    /// Five workers of one shared sweep write results.csv at once, again and again, while a sixth
    /// dies in the middle of each of its writes (its half file stays behind): every write
    /// succeeds, and the file at the name is always one writer's whole document.
    #[test]
    fn writers_finishing_together_never_tear_or_lose_the_document() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        const ROWS: usize = 3_000;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut writers = Vec::new();
        for writer in 0..5 {
            let root = root.clone();
            writers.push(std::thread::spawn(move || {
                let out = OutDir::open_shared(&root).unwrap();
                let mut failures = Vec::new();
                for _ in 0..20 {
                    let written = out.write_atomic_with("results.csv", |w| {
                        writeln!(w, "writer,row")?;
                        for row in 0..ROWS {
                            writeln!(w, "{writer},{row}")?;
                        }
                        Ok(())
                    });
                    if let Err(e) = written {
                        failures.push(e.to_string());
                    }
                }
                failures
            }));
        }
        let dying = {
            let root = root.clone();
            let stop = std::sync::Arc::clone(&stop);
            std::thread::spawn(move || {
                let out = OutDir::open_shared(&root).unwrap();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    // A writer that stops half-way (as one killed mid-write would).
                    let _ = out.write_atomic_with("results.csv", |w| {
                        writeln!(w, "writer,row")?;
                        writeln!(w, "9,0")?;
                        Err(std::io::Error::other("killed"))
                    });
                }
            })
        };
        let mut seen = 0;
        let mut torn = Vec::new();
        while writers.iter().any(|w| !w.is_finished()) {
            if let Ok(bytes) = std::fs::read(root.join("results.csv")) {
                seen += 1;
                if !whole(&bytes, ROWS) {
                    torn.push(bytes.len());
                }
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        dying.join().unwrap();
        let failures: Vec<String> = writers.into_iter().flat_map(|w| w.join().unwrap()).collect();
        assert!(failures.is_empty(), "every write succeeded: {failures:?}");
        assert!(
            torn.is_empty(),
            "{} of {seen} reads found a torn document: {torn:?}",
            torn.len()
        );
        assert!(whole(&std::fs::read(root.join("results.csv")).unwrap(), ROWS));
        // What the dying writer left is its own, and nothing else is.
        let left: Vec<String> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "results.csv" && n != "videos" && n != ".lock")
            .collect();
        assert!(left.iter().all(|n| is_temporary_of(n, "results.csv")), "{left:?}");
    }

    #[test]
    fn temporary_names_are_told_apart() {
        assert!(is_temporary_of(".results.csv.4242-7.tmp", "results.csv"));
        assert!(is_temporary_of(".manifest.yaml.1-0.tmp", "manifest.yaml"));
        for other in [
            ".results.csv.tmp",
            ".results.csv.x-1.tmp",
            "results.csv.1-1.tmp",
            ".results.csvx.1-1.tmp",
        ] {
            assert!(!is_temporary_of(other, "results.csv"), "{other}");
        }
    }
}
