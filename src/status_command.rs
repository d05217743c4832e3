//! `kling-batch status DIR` and `kling-batch report DIR`: what a run folder holds, from its
//! journal and the manifest it names, without touching the network. `status` only reads; `report`
//! takes the folder's lock and rewrites results.csv and report.html.

use crate::exit::Exit;
use crate::journal;
use crate::outdir::JOURNAL;
use crate::report::RunStatus;
use std::io::Write;
use std::path::{Path, PathBuf};

struct Folder {
    history: crate::journal::Replayed,
    torn_tail_bytes: u64,
    plan: Option<crate::plan::Plan>,
}

fn read_folder(dir: &Path, stderr: &mut dyn Write) -> Result<Folder, Exit> {
    let journal_path = dir.join(JOURNAL);
    if !journal_path.is_file() {
        let _ = writeln!(
            stderr,
            "error: {} is not a kling-batch output folder (it has no {JOURNAL})",
            dir.display()
        );
        let _ = writeln!(stderr, "  hint: give the folder a run wrote to with --out");
        return Err(Exit::Invalid);
    }
    let (history, recovery) = match journal::read_replayed(&journal_path) {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(stderr, "error: {e}\n  hint: {}", e.hint());
            return Err(Exit::Failure);
        }
    };
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
    Ok(Folder {
        history,
        torn_tail_bytes: recovery.torn_tail_bytes,
        plan,
    })
}

fn file_ok(dir: &Path, history: &crate::journal::Replayed, id: &str) -> bool {
    let recorded = history.jobs.get(id).and_then(|h| h.file.as_ref());
    recorded.is_some_and(|(path, bytes, _)| crate::download::present(dir, path, *bytes))
}

pub fn run(dir: &Path, json: bool, stdout: &mut dyn Write, stderr: &mut dyn Write) -> Exit {
    let folder = match read_folder(dir, stderr) {
        Ok(f) => f,
        Err(exit) => return exit,
    };
    let (history, plan) = (&folder.history, folder.plan.as_ref());
    let status = RunStatus::of_journal(history, plan, &|id| file_ok(dir, history, id));
    if json {
        let mut value = serde_json::to_value(&status).unwrap_or_default();
        value["folder"] = dir.display().to_string().into();
        value["torn_tail_bytes"] = folder.torn_tail_bytes.into();
        let _ = writeln!(stdout, "{}", serde_json::to_string_pretty(&value).unwrap_or_default());
    } else {
        let _ = write!(stdout, "{}", status.render(&dir.display().to_string()));
        if plan.is_none() {
            let _ = writeln!(
                stdout,
                "note: the manifest could not be read, so jobs never submitted are not counted"
            );
        }
        if folder.torn_tail_bytes > 0 {
            let _ = writeln!(
                stdout,
                "note: the journal ends in a torn line ({} bytes) that a resume will drop",
                folder.torn_tail_bytes
            );
        }
        if !status.finished
            && let Some(manifest) = &status.manifest
        {
            // Every recorded setting that matters, spelled out (a resume keeps them anyway).
            let mut command = format!("kling-batch run {manifest} --out {}", dir.display());
            let settings = history.settings.clone().unwrap_or_default();
            if settings.simulate {
                command.push_str(" --simulate");
            } else if let Some(base) = &settings.api_base {
                command.push_str(&format!(" --api-base {base}"));
            }
            if let Some(cap) = history.cap {
                command.push_str(&format!(" --max-spend {:.2}", cap.usd()));
            }
            if let Some(rate) = settings.rate {
                command.push_str(&format!(" --rate {rate}"));
            }
            if let Some(concurrency) = settings.concurrency {
                command.push_str(&format!(" --concurrency {concurrency}"));
            }
            let _ = writeln!(stdout, "resume with: {command}");
        }
    }
    Exit::Success
}

pub fn report(
    dir: &Path,
    rows: Option<&str>,
    columns: Option<&str>,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Exit {
    let folder = match read_folder(dir, stderr) {
        Ok(f) => f,
        Err(exit) => return exit,
    };
    let Some(plan) = folder.plan.as_ref() else {
        let _ = writeln!(
            stderr,
            "error: the manifest of {} cannot be read, and the report is laid out from it",
            dir.display()
        );
        let _ = writeln!(
            stderr,
            "  hint: put the manifest back where the run read it, or as manifest.yaml in the folder"
        );
        return Exit::Invalid;
    };
    let axes = match crate::report::parse_axes(plan, rows, columns) {
        Ok(a) => a,
        Err(e) => {
            let _ = writeln!(stderr, "error: {e}");
            return Exit::Usage;
        }
    };
    let out = match crate::outdir::OutDir::open(dir) {
        Ok(o) => o,
        Err(e) => {
            let _ = writeln!(
                stderr,
                "error: {e}\n  hint: a running run writes report.html itself when it ends"
            );
            return Exit::Failure;
        }
    };
    let history = &folder.history;
    let jobs: Vec<crate::runner::JobRun> = plan
        .jobs
        .iter()
        .map(|j| crate::runner::JobRun::at_rest(history.jobs.get(j.id.as_str()), file_ok(dir, history, j.id.as_str())))
        .collect();
    let status = RunStatus::of_journal(history, Some(plan), &|id| file_ok(dir, history, id));
    let written = out
        .write_atomic_with(crate::outdir::RESULTS, |w| {
            crate::report::write_results_csv(plan, &jobs, w)
        })
        .and_then(|()| {
            out.write_atomic_with(crate::outdir::REPORT, |w| {
                crate::report::write_gallery(plan, &jobs, &axes, &status, w)
            })
        });
    match written {
        Ok(()) => {
            let _ = writeln!(stdout, "{}", dir.join(crate::outdir::REPORT).display());
            Exit::Success
        }
        Err(e) => {
            let _ = writeln!(stderr, "error: cannot write the report: {e}");
            Exit::Failure
        }
    }
}
