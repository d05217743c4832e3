//! The end-of-run summary on stderr: what happened, what it cost, where the files are, failures
//! grouped by reason, and the exact command to resume if anything is left.

use crate::plan::Plan;
use crate::runner::budget::Ledger;
use crate::runner::{JobPhase, JobRun, StopReason};
use crate::util::money::Money;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;
use std::time::Duration;

pub(crate) struct RunSummary<'a> {
    pub plan: &'a Plan,
    pub jobs: &'a [JobRun],
    pub ledger: &'a Ledger,
    pub stop: Option<&'a StopReason>,
    pub elapsed: Duration,
    pub out: &'a Path,
    /// Estimated cost of each job not yet submitted.
    pub estimates: &'a [Money],
    pub removed: usize,
    pub resume: String,
    /// What the service billed above the reservations (its quotes, or our prices) of the tasks.
    pub billed_above: Money,
}

pub(crate) fn render_summary(s: &RunSummary<'_>) -> String {
    let mut out = String::new();
    let mut counts: BTreeMap<JobPhase, usize> = BTreeMap::new();
    for job in s.jobs {
        // A paid job left for a rerun waits for its video (`JobRun::state_name`).
        let phase = match job.state_name() {
            "downloading" => JobPhase::Downloading,
            _ => job.phase(),
        };
        *counts.entry(phase).or_default() += 1;
    }
    let count = |p: JobPhase| counts.get(&p).copied().unwrap_or(0);
    let total = s.jobs.len();
    let mut line = format!(
        "{total} job{}: {} completed",
        if total == 1 { "" } else { "s" },
        count(JobPhase::Done)
    );
    for (phase, label) in [
        (JobPhase::Failed, "failed"),
        (JobPhase::Skipped, "skipped (parent failed)"),
        (JobPhase::TimedOut, "timed out"),
        (JobPhase::Unresolved, "unresolved"),
        (JobPhase::Queued, "not submitted"),
        (JobPhase::Submitting, "submitting"),
        (JobPhase::Generating, "generating"),
        (JobPhase::Downloading, "downloading"),
    ] {
        if count(phase) > 0 {
            let _ = write!(line, ", {} {label}", count(phase));
        }
    }
    let _ = writeln!(out, "{line}");
    let cap = s.ledger.cap().map_or(String::from("no cap"), |c| format!("cap {c}"));
    let _ = writeln!(
        out,
        "spent {} ({cap}; {} still reserved)",
        s.ledger.spent(),
        s.ledger.reserved()
    );
    if s.billed_above > Money::ZERO {
        let _ = writeln!(
            out,
            "warning: the service billed above its quotes: {} more than was reserved for those tasks; later jobs reserved the higher amount",
            s.billed_above
        );
    }
    let _ = writeln!(
        out,
        "wall time {:.1} s · videos in {} · results in {} · gallery in {}",
        s.elapsed.as_secs_f64(),
        s.out.join("videos").display(),
        s.out.join("results.csv").display(),
        s.out.join("report.html").display()
    );
    let groups = super::status::failure_groups(s.jobs);
    if !groups.is_empty() {
        let _ = writeln!(out, "failures:");
        for group in groups.iter().take(8) {
            let _ = writeln!(out, "  {} × {}", group.jobs, group.reason);
        }
        if groups.len() > 8 {
            let _ = writeln!(out, "  … and {} other reasons (see results.csv)", groups.len() - 8);
        }
    }
    let failed: Vec<usize> = (0..total).filter(|i| s.jobs[*i].phase() == JobPhase::Failed).collect();
    if !failed.is_empty() {
        let cost: Money = failed.iter().map(|i| s.plan.jobs[*i].estimate.cost).sum();
        let _ = writeln!(
            out,
            "{} failed job(s): a plain rerun leaves them as they are; rerun with --retry-failed to give them new attempts (about {cost})",
            failed.len()
        );
    }
    if s.removed > 0 {
        let _ = writeln!(
            out,
            "{} job(s) in the journal are no longer in the manifest; they were left alone",
            s.removed
        );
    }
    let queued: Vec<usize> = (0..total).filter(|i| s.jobs[*i].phase() == JobPhase::Queued).collect();
    let left: Money = queued.iter().map(|i| s.estimates[*i]).sum();
    match s.stop {
        Some(StopReason::CapReached { left: room, .. }) => {
            let committed = s.ledger.spent().saturating_add(s.ledger.reserved());
            let cap = s.ledger.cap().unwrap_or(Money::ZERO);
            // Room under the cap is only claimed when the service billed what it quoted.
            let standing = if committed > cap {
                format!("{committed} billed or reserved against the {cap} cap, above it")
            } else if s.billed_above > Money::ZERO {
                format!("{committed} of the {cap} cap billed or reserved")
            } else {
                format!("{room} of the cap was unused")
            };
            let _ = writeln!(
                out,
                "stopped at the spend cap: {} job(s) not submitted (about {left} more); {standing}",
                queued.len()
            );
            let finish = committed.saturating_add(left);
            let _ = writeln!(
                out,
                "  a cap of ${:.2} would finish the run: rerun with --max-spend {:.2}",
                finish.usd_ceil_cents(),
                finish.usd_ceil_cents()
            );
        }
        Some(StopReason::Credits(message)) => {
            let _ = writeln!(
                out,
                "stopped: the account is out of credits ({message}); {} job(s) not submitted",
                queued.len()
            );
        }
        Some(StopReason::Auth(message)) => {
            let _ = writeln!(out, "stopped: the API key was refused ({message})");
        }
        Some(StopReason::Interrupted) => {
            let _ = writeln!(out, "interrupted: everything so far is saved and resumable");
        }
        Some(StopReason::MaxRuntime) => {
            let _ = writeln!(
                out,
                "stopped submitting at --max-runtime; {} job(s) not submitted",
                queued.len()
            );
        }
        Some(StopReason::Local(message)) => {
            let _ = writeln!(out, "stopped: {message}");
        }
        None => {}
    }
    let unresolved: Vec<&JobRun> = s.jobs.iter().filter(|j| j.phase() == JobPhase::Unresolved).collect();
    if !unresolved.is_empty() {
        let _ = writeln!(
            out,
            "{} create(s) may have made a task whose answer never came: their money stays reserved, and a resume re-sends each with the same Idempotency-Key (the service returns the task it made, never a second one)",
            unresolved.len()
        );
        if let Some(last) = unresolved.iter().find_map(|j| j.error()) {
            let _ = writeln!(out, "  last answer: {last}");
        }
    }
    if s.jobs.iter().any(|j| !j.phase().is_terminal()) {
        let _ = writeln!(out, "resume with: {}", s.resume);
    }
    out
}
