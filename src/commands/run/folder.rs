//! Whose output folder this is, decided before anything is written to it. A run folder belongs to
//! the manifest file that started it; a folder of the user's own files is never taken over; a
//! folder with an earlier run's videos but no journal is never started afresh unasked (that would
//! pay for every job again).

use super::request::Request;
use crate::error::{CommandFailure, Exit};
use crate::journal::LastRun;
use crate::output::folder::{JOURNAL, VIDEOS};
use std::path::{Path, PathBuf};

/// What kling-batch itself leaves in a folder before its journal holds a record (a run killed
/// that early): the lock, `videos/`, the empty journal, the manifest's copy and its temporary file.
fn own_before_journal(name: &str) -> bool {
    let copies = ["yaml", "yml", "csv"].map(|e| format!("manifest.{e}"));
    [".lock", VIDEOS, JOURNAL].contains(&name)
        || copies
            .iter()
            .any(|copy| name == copy || crate::output::folder::is_temporary_of(name, copy))
}

/// `log_file` is the `--log-file` of this very run, which may live in the folder.
pub(super) fn check(
    request: &Request,
    recorded: Option<&LastRun>,
    log_file: Option<&Path>,
) -> Result<(), CommandFailure> {
    let out = &request.place.out;
    let Ok(meta) = std::fs::metadata(out) else {
        return Ok(()); // a new folder
    };
    if !meta.is_dir() {
        return Err(
            CommandFailure::new(Exit::Invalid, format!("{} is a file, not a folder", out.display()))
                .hint("give --out a folder (it is created if missing)"),
        );
    }
    // A shared sweep's folder: its state is in the database, not here.
    if let Some(shared) = crate::commands::state::shared_folder(out) {
        return Err(shared);
    }
    let journal = out.join(JOURNAL);
    let has_journal = std::fs::metadata(&journal).is_ok_and(|m| m.len() > 0);
    if has_journal {
        return same_manifest(request, recorded);
    }
    let videos = earlier_videos(&out.join(VIDEOS));
    if videos > 0 {
        if request.folder.start_afresh {
            return Ok(());
        }
        return Err(CommandFailure::new(
            Exit::Invalid,
            format!(
                "{} holds {videos} video(s) of an earlier run but no journal: a new run would create and pay for every job again",
                out.display()
            ),
        )
        .hint("put its journal.jsonl back (a damaged one: add --repair-journal), or choose another --out; to pay again for every job here, add --start-afresh"));
    }
    if std::fs::symlink_metadata(out.join(".lock")).is_ok_and(|m| m.file_type().is_file()) {
        // Only kling-batch makes `.lock`, and only in a folder this check let it have: a run that
        // has not written its first record yet (it may be writing results.csv already). Whether
        // it still runs is the lock's to say, next.
        return Ok(());
    }
    let foreign: Vec<String> = std::fs::read_dir(out)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| !own_before_journal(name))
                .filter(|name| log_file.is_none_or(|log| !is_entry(log, out, name)))
                .collect()
        })
        .unwrap_or_default();
    if foreign.is_empty() {
        return Ok(());
    }
    let shown: Vec<&str> = foreign.iter().take(3).map(String::as_str).collect();
    Err(CommandFailure::new(
        Exit::Invalid,
        format!(
            "{} is not empty and is not a kling-batch run folder (it holds {}{})",
            out.display(),
            shown.join(", "),
            if foreign.len() > 3 { ", …" } else { "" }
        ),
    )
    .hint("give --out a new or empty folder, e.g. --out runs/my-sweep; nothing was written"))
}

/// A run folder goes on with the manifest file that started it.
fn same_manifest(request: &Request, recorded: Option<&LastRun>) -> Result<(), CommandFailure> {
    let Some(recorded) = recorded.and_then(|r| r.manifest.as_deref()) else {
        return Ok(());
    };
    if request.folder.adopt_folder || same_file(Path::new(recorded), &request.manifest) != Some(false) {
        return Ok(());
    }
    Err(CommandFailure::new(
        Exit::Invalid,
        format!(
            "{} is the run folder of {recorded}, not of {}",
            request.place.out.display(),
            request.manifest.display()
        ),
    )
    .hint(format!(
        "give this manifest its own folder (--out runs/{}), or add --adopt-folder to carry that run's journal, videos and spend over into this manifest's",
        request.manifest.file_stem().map_or("sweep".into(), |s| s.to_string_lossy())
    )))
}

/// Whether two paths name one file; `None` when the recorded one can no longer be found (the
/// manifest was moved: nothing can be told, so the run goes on as before).
fn same_file(recorded: &Path, given: &Path) -> Option<bool> {
    let recorded: PathBuf = std::fs::canonicalize(recorded).ok()?;
    Some(std::fs::canonicalize(given).is_ok_and(|g| g == recorded))
}

/// Whether `path` is the entry `name` of the folder `dir`.
fn is_entry(path: &Path, dir: &Path, name: &str) -> bool {
    path.file_name().is_some_and(|n| n == name)
        && match (path.parent().map(std::fs::canonicalize), std::fs::canonicalize(dir)) {
            (Some(Ok(a)), Ok(b)) => a == b,
            _ => false,
        }
}

fn earlier_videos(videos: &Path) -> usize {
    std::fs::read_dir(videos)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "mp4"))
                .count()
        })
        .unwrap_or(0)
}
