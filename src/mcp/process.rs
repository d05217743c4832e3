//! Whether a sweep's process runs: it holds its folder's lock, or it is a live `kling-batch run`
//! of that folder (still starting up, before it takes the lock).

use std::path::{Path, PathBuf};

/// Whether process `pid` is a `kling-batch run` of `folder` that has not been reaped yet (not a
/// process that took the number since). One that has ended and waits to be reaped counts: its
/// reaper is about to note how it ended, and until then the sweep is still ending, not stopped.
pub(super) fn alive(pid: u32, folder: &Path) -> bool {
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let Ok(stat) = std::fs::read_to_string(proc.join("stat")) else {
        return false;
    };
    // `pid (comm) S …`: the state follows the last `)`.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    if matches!(state, Some('X') | None) {
        return false;
    }
    if state == Some('Z') {
        // A zombie's command line is gone; one of this server's own children is about to be
        // reaped (and its end noted) by the thread that waits for it.
        let parent = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        return parent == Some(std::process::id());
    }
    let cmdline = std::fs::read(proc.join("cmdline")).unwrap_or_default();
    let folder = folder.as_os_str().as_encoded_bytes();
    cmdline.split(|b| *b == 0).any(|arg| arg == folder)
}

/// Whether a run holds the folder's lock now.
pub(super) fn running(folder: &Path) -> bool {
    let Ok(file) = std::fs::OpenOptions::new().read(true).open(folder.join(".lock")) else {
        return false;
    };
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            false
        }
        Err(std::fs::TryLockError::WouldBlock) => true,
        Err(_) => false,
    }
}
