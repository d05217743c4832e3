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
        let temporary = self.root.join(format!(".{name}.tmp"));
        // Whatever stood there goes and the file is made new: a planted symlink is never followed.
        match std::fs::remove_file(&temporary) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let file = OpenOptions::new().write(true).create_new(true).open(&temporary)?;
        let mut file = std::io::BufWriter::with_capacity(128 * 1024, file);
        content(&mut file)?;
        let file = file.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        crate::util::crash::point("results.before_rename");
        std::fs::rename(&temporary, &target)?;
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
