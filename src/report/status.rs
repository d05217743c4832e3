//! Where a run stands, as one value: job counts by state, spend against the cap, failures by
//! reason, and what a resume would do next. Built from a live run (for `summary.json`) or from the
//! journal alone (for `kling-batch status`), and shown as text or JSON.

use crate::journal::{FailureKind, Phase, Replayed, Resume};
use crate::plan::Plan;
use crate::runner::{JobPhase, JobRun};
use crate::util::money::Money;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NextSteps {
    /// Jobs never submitted, or waiting for a new attempt.
    pub submit: usize,
    /// Creates whose answer was lost: re-sent with the same key.
    pub resend: usize,
    /// Tasks that exist: polled again.
    pub reattach: usize,
    /// Finished tasks whose video is not on disk yet.
    pub download: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    pub reason: String,
    pub jobs: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunStatus {
    pub name: Option<String>,
    pub manifest: Option<String>,
    pub jobs: usize,
    /// State name → jobs in it (`completed`, `failed`, `not_started`, `submitting`, `generating`,
    /// `downloading`, `timed_out`, `unresolved`).
    pub states: BTreeMap<String, usize>,
    pub spent_usd: f64,
    pub reserved_usd: f64,
    pub cap_usd: Option<f64>,
    pub failures: Vec<Failure>,
    pub next: NextSteps,
    /// Jobs in the journal that the manifest no longer has.
    pub removed: usize,
    pub finished: bool,
}

fn failures(reasons: impl Iterator<Item = String>) -> Vec<Failure> {
    let mut groups: BTreeMap<String, usize> = BTreeMap::new();
    for reason in reasons {
        *groups.entry(reason).or_default() += 1;
    }
    let mut list: Vec<Failure> = groups
        .into_iter()
        .map(|(reason, jobs)| Failure { reason, jobs })
        .collect();
    list.sort_by(|a, b| b.jobs.cmp(&a.jobs).then_with(|| a.reason.cmp(&b.reason)));
    list
}

/// The failed jobs of a run, grouped by reason, most common first.
pub(super) fn failure_groups(jobs: &[JobRun]) -> Vec<Failure> {
    failures(jobs.iter().filter(|j| j.phase() == JobPhase::Failed).map(|j| {
        j.failure()
            .map_or_else(|| "unknown".to_string(), |f| reason(f.kind, &f.message))
    }))
}

fn reason(kind: FailureKind, message: &str) -> String {
    format!("{}: {message}", kind.as_str())
}

impl RunStatus {
    /// From a run in progress or just ended.
    pub fn of_run(
        plan: &Plan,
        jobs: &[JobRun],
        spent: Money,
        reserved: Money,
        cap: Option<Money>,
        removed: usize,
    ) -> RunStatus {
        let mut states: BTreeMap<String, usize> = BTreeMap::new();
        let mut next = NextSteps::default();
        for job in jobs {
            // A paid job left at its deadline waits for its video: as `status` reads the journal.
            let paid_and_parked = job.phase() == JobPhase::TimedOut && job.facts.cost.is_some();
            let name = match job.phase() {
                JobPhase::Queued if job.facts.attempt == 0 => "not_started",
                JobPhase::Queued => "waiting",
                _ if paid_and_parked => "downloading",
                other => other.as_str(),
            };
            *states.entry(name.to_string()).or_default() += 1;
            match job.phase() {
                JobPhase::Queued => next.submit += 1,
                JobPhase::Submitting | JobPhase::Unresolved => next.resend += 1,
                _ if paid_and_parked => next.download += 1,
                JobPhase::Generating | JobPhase::TimedOut => next.reattach += 1,
                JobPhase::Downloading => next.download += 1,
                JobPhase::Done | JobPhase::Failed => {}
            }
        }
        RunStatus {
            name: plan.name.clone(),
            manifest: Some(plan.manifest.display().to_string()),
            jobs: jobs.len(),
            states,
            spent_usd: spent.usd(),
            reserved_usd: reserved.usd(),
            cap_usd: cap.map(Money::usd),
            failures: failure_groups(jobs),
            finished: jobs.iter().all(|j| j.phase().is_terminal()),
            next,
            removed,
        }
    }

    /// From the journal alone. With the plan, jobs not yet started are counted too; `file_ok`
    /// says whether a downloaded job's video is still on disk as recorded.
    pub fn of_journal(history: &Replayed, plan: Option<&Plan>, file_ok: &dyn Fn(&str) -> bool) -> RunStatus {
        let ids: Vec<String> = match plan {
            Some(p) => p.jobs.iter().map(|j| j.id.to_string()).collect(),
            None => {
                let mut ids: Vec<String> = history.jobs.keys().cloned().collect();
                ids.sort();
                ids
            }
        };
        let mut states: BTreeMap<String, usize> = BTreeMap::new();
        let mut next = NextSteps::default();
        let mut failed = Vec::new();
        for id in &ids {
            let h = history.jobs.get(id);
            let name = match h.map(|h| (h.resume(file_ok(id)), h)) {
                None => {
                    next.submit += 1;
                    "not_started"
                }
                Some((Resume::Submit, _)) => {
                    next.submit += 1;
                    "waiting"
                }
                Some((Resume::Resend { .. }, _)) => {
                    next.resend += 1;
                    "submitting"
                }
                Some((Resume::Reattach { .. }, h)) => {
                    next.reattach += 1;
                    if h.phase == Some(Phase::TimedOut) {
                        "timed_out"
                    } else {
                        "generating"
                    }
                }
                Some((Resume::Download { .. }, h)) => {
                    next.download += 1;
                    if h.phase == Some(Phase::Downloaded) {
                        "file_missing"
                    } else {
                        "downloading"
                    }
                }
                Some((Resume::Done { .. }, _)) => "completed",
                Some((Resume::Failed, h)) => {
                    if let Some(f) = h.failure.as_ref() {
                        failed.push(reason(f.kind, &f.message));
                    }
                    "failed"
                }
            };
            *states.entry(name.to_string()).or_default() += 1;
        }
        let known: std::collections::HashSet<&String> = ids.iter().collect();
        RunStatus {
            name: plan.and_then(|p| p.name.clone()),
            manifest: history.manifest.clone(),
            jobs: ids.len(),
            finished: next == NextSteps::default(),
            states,
            spent_usd: history.spent.usd(),
            reserved_usd: history.reserved.usd(),
            cap_usd: history.cap.map(Money::usd),
            failures: failures(failed.into_iter()),
            next,
            removed: history.jobs.keys().filter(|id| !known.contains(id)).count(),
        }
    }

    pub fn render(&self, folder: &str) -> String {
        let mut out = String::new();
        let title = match (&self.name, &self.manifest) {
            (Some(n), Some(m)) => format!("{folder} ({n}, {m})"),
            (None, Some(m)) => format!("{folder} ({m})"),
            (Some(n), None) => format!("{folder} ({n})"),
            _ => folder.to_string(),
        };
        let _ = writeln!(out, "{title}");
        let order = [
            "completed",
            "failed",
            "not_started",
            "waiting",
            "submitting",
            "generating",
            "downloading",
            "file_missing",
            "timed_out",
            "unresolved",
        ];
        let parts: Vec<String> = order
            .iter()
            .filter_map(|s| self.states.get(*s).map(|n| format!("{n} {}", s.replace('_', " "))))
            .collect();
        let _ = writeln!(
            out,
            "{} job{}: {}",
            self.jobs,
            if self.jobs == 1 { "" } else { "s" },
            parts.join(", ")
        );
        let money = |usd: f64| format!("${usd:.2}");
        let cap = self
            .cap_usd
            .map_or("no cap".to_string(), |c| format!("cap {}", money(c)));
        let _ = writeln!(
            out,
            "spent {} ({cap}; {} reserved)",
            money(self.spent_usd),
            money(self.reserved_usd)
        );
        if !self.failures.is_empty() {
            let _ = writeln!(out, "failures:");
            for f in self.failures.iter().take(8) {
                let _ = writeln!(out, "  {} × {}", f.jobs, f.reason);
            }
        }
        if self.removed > 0 {
            let _ = writeln!(
                out,
                "{} job(s) in the journal are no longer in the manifest",
                self.removed
            );
        }
        if self.finished {
            let _ = writeln!(out, "finished: nothing left for a resume to do");
        } else {
            let n = &self.next;
            let _ = writeln!(
                out,
                "a resume would: submit {}, re-send {} with their keys, re-attach to {} task(s), download {} video(s)",
                n.submit, n.resend, n.reattach, n.download
            );
        }
        out
    }
}
