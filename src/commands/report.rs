//! `kling-batch report DIR`: takes the folder's lock and rewrites results.csv and report.html from
//! the journal and the manifest, with the gallery's axes as asked — and, once the run has been
//! reviewed, the reviews' columns and `review.csv`.

use super::status::{Folder, file_ok, read_state};
use crate::error::{CommandFailure, Exit};
use crate::report::{Axes, RunStatus};
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
    let plan = plan_of(dir, &folder)?;
    let axes = crate::report::parse_axes(plan, rows, columns).map_err(|e| CommandFailure::new(Exit::Usage, e))?;
    let written = write_reports(dir, &folder, plan, &axes)?;
    let _ = writeln!(stdout, "{written}");
    Ok(Exit::Success)
}

/// The plan a folder's documents are laid out from.
pub(super) fn plan_of<'a>(dir: &Path, folder: &'a Folder) -> Result<&'a crate::plan::Plan, CommandFailure> {
    folder.plan.as_ref().ok_or_else(|| {
        CommandFailure::new(
            Exit::Invalid,
            format!(
                "the manifest of {} cannot be read, and the report is laid out from it",
                dir.display()
            ),
        )
        .hint("put the manifest back where the run read it, or as manifest.yaml in the folder")
    })
}

/// Rewrites results.csv and report.html (and review.csv, once reviewed) for the run in `dir`;
/// returns where the gallery is.
pub(super) fn write_reports(
    dir: &Path,
    folder: &Folder,
    plan: &crate::plan::Plan,
    axes: &Axes,
) -> Result<String, CommandFailure> {
    let failed = |e: std::io::Error| CommandFailure::new(Exit::Failure, format!("cannot write the report: {e}"));
    let history = &folder.history;
    let mut jobs: Vec<crate::runner::JobRun> = plan
        .jobs
        .iter()
        .map(|j| crate::runner::JobRun::at_rest(history.jobs.get(j.id.as_str()), file_ok(dir, history, j.id.as_str())))
        .collect();
    crate::runner::standing::settle_at_rest(plan, &mut jobs);
    let status = RunStatus::of_journal(history, Some(plan), &|id| file_ok(dir, history, id));
    let removed = crate::report::removed_paid(plan, history);
    let reviews = crate::review::records::read(dir).map_err(|e| CommandFailure::new(Exit::Invalid, e))?;
    let reviewed = dir.join(crate::review::records::REVIEWS).exists();
    let verdicts = reviewed.then(|| crate::review::verdicts::verdicts_of(&reviews));
    let values = reviewed.then(|| {
        let params = plan
            .jobs
            .iter()
            .map(|j| (j.id.to_string(), crate::review::clips::params_of(j)))
            .collect();
        crate::review::scores::value_scores(&reviews.votes, &params)
    });
    // Each document as a writer of its bytes: streamed into the folder, or made whole for a bucket.
    type Fill<'a> = Box<dyn Fn(&mut dyn Write) -> std::io::Result<()> + 'a>;
    let mut documents: Vec<(&str, Fill<'_>)> = vec![
        (
            crate::output::folder::RESULTS,
            Box::new(|w| crate::report::write_results_csv(plan, &jobs, &removed, verdicts.as_ref(), w)),
        ),
        (
            crate::output::folder::REPORT,
            Box::new(|w| crate::report::write_gallery(plan, &jobs, &removed, axes, &status, verdicts.as_ref(), w)),
        ),
    ];
    if let Some(values) = &values {
        documents.push((
            crate::review::verdicts::REVIEW_CSV,
            Box::new(move |w| crate::review::verdicts::write_review_csv(values, w)),
        ));
    }
    if let Some(url) = super::status::bucket_of(history) {
        // The run's results live in its bucket: rewritten there, each a whole object.
        let url = crate::output::bucket::BucketUrl::parse(&url).map_err(|e| CommandFailure::new(Exit::Invalid, e))?;
        let mut objects = Vec::new();
        for (name, fill) in &documents {
            let mut bytes = Vec::new();
            fill(&mut bytes).map_err(failed)?;
            objects.push((*name, bytes));
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| CommandFailure::new(Exit::Failure, format!("cannot start the async runtime: {e}")))?;
        runtime.block_on(async {
            let bucket = crate::output::bucket::Bucket::from_env(&url).map_err(super::run::bucket_failure)?;
            for (name, bytes) in objects {
                bucket.put(name, bytes).await.map_err(super::run::bucket_failure)?;
            }
            Ok::<(), CommandFailure>(())
        })?;
        return Ok(format!("{url}/{}", crate::output::folder::REPORT));
    }
    // Workers of a shared sweep share the folder; a report beside them does too.
    let opened = if folder.workers.is_some() {
        crate::output::folder::OutDir::open_shared(dir)
    } else {
        crate::output::folder::OutDir::open(dir)
    };
    let out = opened.map_err(|e| {
        CommandFailure::new(Exit::Failure, e).hint("a running run writes report.html itself when it ends")
    })?;
    for (name, fill) in &documents {
        out.write_atomic_with(name, |w| fill(w)).map_err(failed)?;
    }
    Ok(dir.join(crate::output::folder::REPORT).display().to_string())
}
