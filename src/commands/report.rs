//! `kling-batch report DIR`: takes the folder's lock and rewrites results.csv and report.html from
//! the journal and the manifest, with the gallery's axes as asked.

use super::status::{file_ok, read_state};
use crate::error::{CommandFailure, Exit};
use crate::report::RunStatus;
use std::io::Write;
use std::path::Path;

pub(crate) fn run(
    dir: &Path,
    rows: Option<&str>,
    columns: Option<&str>,
    state: Option<String>,
    run_name: Option<&str>,
    stdout: &mut dyn Write,
) -> Result<Exit, CommandFailure> {
    let folder = read_state(dir, state, run_name)?;
    let Some(plan) = folder.plan.as_ref() else {
        return Err(CommandFailure::new(
            Exit::Invalid,
            format!(
                "the manifest of {} cannot be read, and the report is laid out from it",
                dir.display()
            ),
        )
        .hint("put the manifest back where the run read it, or as manifest.yaml in the folder"));
    };
    let axes = crate::report::parse_axes(plan, rows, columns).map_err(|e| CommandFailure::new(Exit::Usage, e))?;
    // Workers of a shared sweep share the folder; a report beside them does too.
    let opened = if folder.workers.is_some() {
        crate::output::folder::OutDir::open_shared(dir)
    } else {
        crate::output::folder::OutDir::open(dir)
    };
    let out = opened.map_err(|e| {
        CommandFailure::new(Exit::Failure, e).hint("a running run writes report.html itself when it ends")
    })?;
    let history = &folder.history;
    let mut jobs: Vec<crate::runner::JobRun> = plan
        .jobs
        .iter()
        .map(|j| crate::runner::JobRun::at_rest(history.jobs.get(j.id.as_str()), file_ok(dir, history, j.id.as_str())))
        .collect();
    crate::runner::standing::settle_at_rest(plan, &mut jobs);
    let status = RunStatus::of_journal(history, Some(plan), &|id| file_ok(dir, history, id));
    let removed = crate::report::removed_paid(plan, history);
    if let Some(url) = super::status::bucket_of(history) {
        // The run's results live in its bucket: rewritten there, each a whole object.
        let mut results = Vec::new();
        let mut gallery = Vec::new();
        crate::report::write_results_csv(plan, &jobs, &removed, &mut results)
            .and_then(|()| crate::report::write_gallery(plan, &jobs, &removed, &axes, &status, &mut gallery))
            .map_err(|e| CommandFailure::new(Exit::Failure, format!("cannot write the report: {e}")))?;
        let url = crate::output::bucket::BucketUrl::parse(&url).map_err(|e| CommandFailure::new(Exit::Invalid, e))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| CommandFailure::new(Exit::Failure, format!("cannot start the async runtime: {e}")))?;
        runtime.block_on(async {
            let bucket = crate::output::bucket::Bucket::from_env(&url).map_err(super::run::bucket_failure)?;
            bucket
                .put(crate::output::folder::RESULTS, results)
                .await
                .map_err(super::run::bucket_failure)?;
            bucket
                .put(crate::output::folder::REPORT, gallery)
                .await
                .map_err(super::run::bucket_failure)
        })?;
        let _ = writeln!(stdout, "{url}/{}", crate::output::folder::REPORT);
        return Ok(Exit::Success);
    }
    let written = out
        .write_atomic_with(crate::output::folder::RESULTS, |w| {
            crate::report::write_results_csv(plan, &jobs, &removed, w)
        })
        .and_then(|()| {
            out.write_atomic_with(crate::output::folder::REPORT, |w| {
                crate::report::write_gallery(plan, &jobs, &removed, &axes, &status, w)
            })
        });
    written.map_err(|e| CommandFailure::new(Exit::Failure, format!("cannot write the report: {e}")))?;
    let _ = writeln!(stdout, "{}", dir.join(crate::output::folder::REPORT).display());
    Ok(Exit::Success)
}
