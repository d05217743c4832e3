//! `kling-batch status DIR`: what a run folder holds, from its journal and the manifest it names,
//! without touching the network or taking the folder's lock.

use crate::exit::Exit;
use crate::journal;
use crate::outdir::JOURNAL;
use crate::report::RunStatus;
use std::io::Write;
use std::path::{Path, PathBuf};

pub fn run(dir: &Path, json: bool, stdout: &mut dyn Write, stderr: &mut dyn Write) -> Exit {
    let journal_path = dir.join(JOURNAL);
    if !journal_path.is_file() {
        let _ = writeln!(
            stderr,
            "error: {} is not a kling-batch output folder (it has no {JOURNAL})",
            dir.display()
        );
        let _ = writeln!(stderr, "  hint: give the folder a run wrote to with --out");
        return Exit::Invalid;
    }
    let (records, recovery) = match journal::read(&journal_path) {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(stderr, "error: {e}\n  hint: {}", e.hint());
            return Exit::Failure;
        }
    };
    let history = journal::replay(&records);
    // The manifest as the run was given it, else the copy in the folder.
    let candidates: Vec<PathBuf> = history
        .manifest
        .iter()
        .map(PathBuf::from)
        .chain(["yaml", "yml", "csv"].iter().map(|e| dir.join(format!("manifest.{e}"))))
        .collect();
    let plan = candidates
        .iter()
        .filter(|p| p.is_file())
        .find_map(|p| crate::app::load_plan(p).ok());
    let file_ok = |id: &str| {
        let recorded = history.jobs.get(id).and_then(|h| h.file.as_ref());
        recorded.is_some_and(|(path, bytes, _)| std::fs::metadata(dir.join(path)).is_ok_and(|m| m.len() == *bytes))
    };
    let status = RunStatus::of_journal(&history, plan.as_ref(), &file_ok);
    if json {
        let mut value = serde_json::to_value(&status).unwrap_or_default();
        value["folder"] = dir.display().to_string().into();
        value["torn_tail_bytes"] = recovery.torn_tail_bytes.into();
        let _ = writeln!(stdout, "{}", serde_json::to_string_pretty(&value).unwrap_or_default());
    } else {
        let _ = write!(stdout, "{}", status.render(&dir.display().to_string()));
        if plan.is_none() {
            let _ = writeln!(
                stdout,
                "note: the manifest could not be read, so jobs never submitted are not counted"
            );
        }
        if recovery.torn_tail_bytes > 0 {
            let _ = writeln!(
                stdout,
                "note: the journal ends in a torn line ({} bytes) that a resume will drop",
                recovery.torn_tail_bytes
            );
        }
        if !status.finished
            && let Some(manifest) = &status.manifest
        {
            let _ = writeln!(
                stdout,
                "resume with: kling-batch run {manifest} --out {}",
                dir.display()
            );
        }
    }
    Exit::Success
}
