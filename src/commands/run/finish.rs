//! The edges of a run that are not the run itself: the spending question before it, the progress
//! snapshot during it, and after it summary.json, the exit code, the manifest's copy and the check
//! of recorded videos a resume starts from.

use super::request::{Consent, Request};
use super::resume::{ResumeSettings, resume_command};
use crate::error::Exit;
use crate::output::folder::{REPORT, RESULTS};
use crate::plan::Plan;
use crate::report::{RunSummary, render_summary, write_results_csv};
use crate::runner::{Dispatcher, JobPhase, StopReason};
use crate::util::money::Money;
use std::io::Write;
use std::time::Duration;

/// What a run's end is made from, whichever store it used.
pub(super) struct Ending<'a> {
    pub(super) plan: &'a Plan,
    pub(super) request: &'a Request,
    pub(super) resume: &'a ResumeSettings,
    /// What each job reserves (the quotes the run started with): the summary's estimates.
    pub(super) reservations: &'a [Money],
    /// Jobs the store has that the manifest no longer has, and those of them that were paid for.
    pub(super) removed: usize,
    pub(super) removed_paid: &'a [crate::report::Removed],
    /// What reviewers said of the clips, when the run was reviewed.
    pub(super) verdicts: Option<&'a crate::report::Verdicts>,
    pub(super) started: std::time::Instant,
}

impl Ending<'_> {
    /// results.csv, report.html and summary.json, in the output folder or the bucket: made here
    /// for both kinds of run, from their jobs at the end.
    pub(super) async fn write_documents(
        &self,
        documents: &super::bucket::Documents<'_>,
        jobs: &[crate::runner::JobRun],
        removed_paid: &[crate::report::Removed],
        status: &crate::report::RunStatus,
        summary_json: &str,
        stderr: &mut dyn Write,
    ) {
        let plan = self.plan;
        documents
            .write_with(
                RESULTS,
                |w| write_results_csv(plan, jobs, removed_paid, self.verdicts, w),
                stderr,
            )
            .await;
        let axes = crate::report::Axes::default_for(plan);
        documents
            .write_with(
                REPORT,
                |w| crate::report::write_gallery(plan, jobs, removed_paid, &axes, status, self.verdicts, w),
                stderr,
            )
            .await;
        documents
            .write_with("summary.json", |w| w.write_all(summary_json.as_bytes()), stderr)
            .await;
    }

    /// A run of its own: results.csv, report.html and summary.json from its jobs, the stray part
    /// files of a finished run removed, and the summary said. Returns the exit code.
    pub(super) async fn of_own_run(
        &self,
        documents: &super::bucket::Documents<'_>,
        d: &Dispatcher,
        stderr: &mut dyn Write,
    ) -> Exit {
        let plan = self.plan;
        let exit = exit_code(d.stop_reason(), d.jobs());
        let status = crate::report::RunStatus::of_run(plan, d.jobs(), spend(d), self.removed);
        let summary = summary_json(&status, exit, d.stop_reason(), self.started.elapsed(), None);
        self.write_documents(documents, d.jobs(), self.removed_paid, &status, &summary, stderr)
            .await;
        if let Some(out) = documents.out
            && d.jobs().iter().all(|j| j.phase().is_terminal())
        {
            for part in out.stray_parts() {
                let _ = std::fs::remove_file(part);
            }
        }
        let output_place = match documents.bucket {
            Some(b) => std::path::PathBuf::from(b.url().to_string()),
            None => self.request.place.out.clone(),
        };
        let summary = render_summary(&RunSummary {
            plan,
            jobs: d.jobs(),
            ledger: d.ledger(),
            stop: d.stop_reason(),
            elapsed: self.started.elapsed(),
            out: &output_place,
            estimates: self.reservations,
            removed: self.removed,
            resume: resume_command(&self.request.place, self.resume),
            billed_above: d.billed_above_reservations(),
        });
        let _ = write!(stderr, "{summary}");
        exit
    }
}

/// What a dispatcher's ledger says of the run's money.
pub(super) fn spend(d: &Dispatcher) -> crate::report::Spend {
    let ledger = d.ledger();
    crate::report::Spend {
        spent: ledger.spent(),
        reserved: ledger.reserved(),
        cap: ledger.cap(),
    }
}

/// summary.json: where the run (or, with `sweep`, the whole shared sweep) stands, how this
/// process ended, and when — made here for both run paths.
pub(super) fn summary_json(
    status: &crate::report::RunStatus,
    exit: Exit,
    stop: Option<&StopReason>,
    elapsed: Duration,
    sweep: Option<&str>,
) -> String {
    let mut value = serde_json::to_value(status).unwrap_or_default();
    value["exit_code"] = exit.code().into();
    value["stop_reason"] = stop.map(stop_name).into();
    value["wall_seconds"] = elapsed.as_secs_f64().into();
    value["finished_at"] = crate::util::time_format::now().into();
    if let Some(name) = sweep {
        value["sweep"] = name.into();
    }
    serde_json::to_string_pretty(&value).unwrap_or_default() + "\n"
}

fn stop_name(stop: &StopReason) -> &'static str {
    match stop {
        StopReason::Auth(_) => "auth",
        StopReason::Local(_) => "local_error",
        StopReason::Interrupted => "interrupted",
        StopReason::Credits(_) => "credits",
        StopReason::CapReached { .. } => "spend_cap",
        StopReason::MaxRuntime => "max_runtime",
    }
}

/// On a terminal, asks before spending more than `--confirm-above`; off a terminal (cron, CI,
/// pipes) never asks: the spend cap is the guard there.
pub(super) fn confirm(consent: Consent, simulate: bool, estimate: Money, jobs: usize, stderr: &mut dyn Write) -> bool {
    use std::io::IsTerminal;
    if consent.yes
        || simulate
        || estimate <= consent.above
        || !std::io::stdin().is_terminal()
        || !std::io::stderr().is_terminal()
    {
        return true;
    }
    let _ = write!(
        stderr,
        "{jobs} job(s) to submit, estimated {estimate}. Go ahead? [y/N] "
    );
    let _ = stderr.flush();
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).is_ok()
        && matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// Where the run stands, for the progress display.
pub(super) fn snapshot(d: &Dispatcher) -> crate::report::Snapshot {
    let mut s = crate::report::Snapshot {
        total: d.jobs().len(),
        spent: d.ledger().spent(),
        cap: d.ledger().cap(),
        ..Default::default()
    };
    for job in d.jobs() {
        match job.phase() {
            JobPhase::Done => s.done += 1,
            JobPhase::Failed | JobPhase::Skipped => s.failed += 1,
            JobPhase::Queued => s.queued += 1,
            JobPhase::Submitting if job.uploading() => s.uploading += 1,
            JobPhase::Submitting => s.submitting += 1,
            JobPhase::Generating => s.generating += 1,
            JobPhase::Downloading => s.downloading += 1,
            JobPhase::TimedOut | JobPhase::Unresolved => {}
        }
    }
    s
}

pub(super) fn exit_code(stop: Option<&StopReason>, jobs: &[crate::runner::JobRun]) -> Exit {
    match stop {
        Some(StopReason::Auth(_)) => return Exit::Auth,
        Some(StopReason::Local(_)) => return Exit::Failure,
        Some(StopReason::Interrupted) => return Exit::Interrupted,
        Some(StopReason::Credits(_)) => return Exit::Credits,
        Some(StopReason::CapReached { .. }) => return Exit::SpendCap,
        Some(StopReason::MaxRuntime) | None => {}
    }
    if jobs.iter().any(|j| !j.phase().is_terminal()) {
        Exit::TimedOut
    } else if jobs
        .iter()
        .any(|j| matches!(j.phase(), JobPhase::Failed | JobPhase::Skipped))
    {
        Exit::JobsFailed
    } else {
        Exit::Success
    }
}
