//! The edges of a run that are not the run itself: the spending question before it, the progress
//! snapshot during it, and after it summary.json, the exit code, the manifest's copy and the check
//! of recorded videos a resume starts from.

use crate::cli::RunArgs;
use crate::error::Exit;
use crate::journal::Replayed;
use crate::output::folder::OutDir;
use crate::output::videos::VideoStore;
use crate::plan::Plan;
use crate::runner::{Dispatcher, JobPhase, StopReason};
use crate::util::money::Money;
use std::io::Write;
use std::time::Duration;

/// `summary.json` beside results.csv: the run's status, exit code and why it stopped, for alerts.
pub(super) fn summary_json_text(plan: &Plan, d: &Dispatcher, removed: usize, exit: Exit, elapsed: Duration) -> String {
    let status = crate::report::RunStatus::of_run(plan, d.jobs(), spend(d), removed);
    summary_json(&status, exit, d.stop_reason(), elapsed, None)
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
pub(super) fn confirm(args: &RunArgs, estimate: Money, jobs: usize, stderr: &mut dyn Write) -> bool {
    use std::io::IsTerminal;
    let threshold = Money::from_usd_f64(args.confirm_above).unwrap_or(Money::ZERO);
    if args.yes
        || args.simulate
        || estimate <= threshold
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

pub(super) fn copy_manifest(out: &OutDir, manifest: &std::path::Path, stderr: &mut dyn Write) {
    let ext = manifest.extension().and_then(|e| e.to_str()).unwrap_or("yaml");
    match std::fs::read(manifest) {
        Ok(bytes) => {
            if let Err(e) = out.write_atomic(&format!("manifest.{ext}"), &bytes) {
                let _ = writeln!(stderr, "warning: cannot copy the manifest into the output folder: {e}");
            }
        }
        Err(e) => {
            let _ = writeln!(stderr, "warning: cannot copy the manifest: {e}");
        }
    }
}

/// Whether each downloaded job's file is on disk at its recorded size (see `download::present`).
pub(super) fn verify_files(plan: &Plan, history: &Replayed, videos: &dyn VideoStore) -> Vec<bool> {
    plan.jobs
        .iter()
        .map(|job| {
            history
                .jobs
                .get(job.id.as_str())
                .and_then(|h| h.video.as_ref())
                .is_some_and(|v| videos.present(v))
        })
        .collect()
}
