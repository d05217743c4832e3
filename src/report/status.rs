//! Where a run stands, as one value: job counts by state, spend against the cap, failures by
//! reason, and what a resume would do next. Built from a live run (for `summary.json`) or from the
//! journal alone (for `kling-batch status`), and shown as text or JSON.

use crate::journal::{FailureKind, Replayed};
use crate::plan::Plan;
use crate::runner::{JobPhase, JobRun};
use crate::util::money::Money;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct NextSteps {
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
pub(crate) struct Failure {
    pub reason: String,
    pub jobs: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct RunStatus {
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
    /// What `--retry-failed` would give the failed jobs new attempts for, at the plan's prices
    /// (known with the plan). A plain rerun leaves failed jobs alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_failed_usd: Option<f64>,
    /// With steps (`needs:`): the states of each entry's jobs, parents before their steps.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepStatus>,
}

/// One entry of a plan with steps, and where its jobs stand.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct StepStatus {
    pub step: String,
    pub needs: Option<String>,
    pub depth: usize,
    pub jobs: usize,
    pub states: BTreeMap<String, usize>,
}

/// The states of each entry's jobs, given each job's state name in plan order.
fn by_step(plan: &Plan, names: &[&str]) -> Vec<StepStatus> {
    plan.step_tree()
        .into_iter()
        .map(|row| {
            let mut states: BTreeMap<String, usize> = BTreeMap::new();
            for (job, name) in plan.jobs.iter().zip(names) {
                if job.prompt_index == row.entry {
                    *states.entry(name.to_string()).or_default() += 1;
                }
            }
            StepStatus {
                step: row.step,
                needs: row.needs,
                depth: row.depth,
                jobs: row.jobs,
                states,
            }
        })
        .collect()
}

/// The order states are listed in.
const STATE_ORDER: [&str; 13] = [
    "completed",
    "failed",
    "skipped",
    "not_started",
    "waiting",
    "waiting_for_parent",
    "submitting",
    "generating",
    "downloading",
    "file_missing",
    "timed_out",
    "unresolved",
    "uploading",
];

fn state_list(states: &BTreeMap<String, usize>) -> String {
    STATE_ORDER
        .iter()
        .filter_map(|s| states.get(*s).map(|n| format!("{n} {}", s.replace('_', " "))))
        .collect::<Vec<_>>()
        .join(", ")
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

/// The failed (and skipped) jobs of a run, grouped by reason, most common first.
pub(super) fn failure_groups(jobs: &[JobRun]) -> Vec<Failure> {
    failures(jobs.iter().filter_map(|j| {
        match j.phase() {
            JobPhase::Failed => Some(
                j.failure()
                    .map_or_else(|| "unknown".to_string(), |f| reason(f.kind, &f.message)),
            ),
            JobPhase::Skipped => Some(skipped_reason(&j.error().unwrap_or_default())),
            _ => None,
        }
    }))
}

fn skipped_reason(why: &str) -> String {
    format!("skipped: {why}")
}

fn reason(kind: FailureKind, message: &str) -> String {
    format!("{}: {message}", kind.as_str())
}

/// What the run's money stands at.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Spend {
    pub spent: Money,
    pub reserved: Money,
    pub cap: Option<Money>,
}

impl RunStatus {
    /// From a run in progress or just ended.
    pub(crate) fn of_run(plan: &Plan, jobs: &[JobRun], spend: Spend, removed: usize) -> RunStatus {
        RunStatus::of_jobs(
            plan.name.clone(),
            Some(plan.manifest.display().to_string()),
            Some(plan),
            jobs,
            spend,
            removed,
        )
    }

    /// From jobs read at rest by the caller (a shared sweep's whole records, at its end), the
    /// records' manifest, totals, and the count of jobs they name that the plan does not.
    pub(crate) fn of_rest(
        plan: &Plan,
        manifest: Option<String>,
        jobs: &[JobRun],
        spend: Spend,
        removed: usize,
    ) -> RunStatus {
        RunStatus::of_jobs(plan.name.clone(), manifest, Some(plan), jobs, spend, removed)
    }

    /// From the journal (or the database) alone: every job read at rest with the one reading of
    /// its facts, then counted as a run's are. With the plan, jobs not yet started are counted
    /// too; `file_ok` says whether a downloaded job's video is still in place as recorded.
    pub(crate) fn of_journal(history: &Replayed, plan: Option<&Plan>, file_ok: &dyn Fn(&str) -> bool) -> RunStatus {
        let ids: Vec<String> = match plan {
            Some(p) => p.jobs.iter().map(|j| j.id.to_string()).collect(),
            None => {
                let mut ids: Vec<String> = history.jobs.keys().cloned().collect();
                ids.sort();
                ids
            }
        };
        let mut jobs: Vec<JobRun> = ids
            .iter()
            .map(|id| JobRun::at_rest(history.jobs.get(id), file_ok(id)))
            .collect();
        // Steps nothing was sent for stand on their parents: waiting, or skipped.
        if let Some(p) = plan {
            crate::runner::standing::settle_at_rest(p, &mut jobs);
        }
        let known: std::collections::HashSet<&String> = ids.iter().collect();
        let removed = history.jobs.keys().filter(|id| !known.contains(id)).count();
        let spend = Spend {
            spent: history.spent,
            reserved: history.reserved,
            cap: history.cap,
        };
        RunStatus::of_jobs(
            plan.and_then(|p| p.name.clone()),
            history.manifest.clone(),
            plan,
            &jobs,
            spend,
            removed,
        )
    }

    /// Jobs counted by their one state name (`JobState::name`), what a resume would do with
    /// each, and the failures by reason.
    fn of_jobs(
        name: Option<String>,
        manifest: Option<String>,
        plan: Option<&Plan>,
        jobs: &[JobRun],
        spend: Spend,
        removed: usize,
    ) -> RunStatus {
        let mut states: BTreeMap<String, usize> = BTreeMap::new();
        let mut next = NextSteps::default();
        let mut names = Vec::with_capacity(jobs.len());
        for job in jobs {
            let name = job.state_name();
            names.push(name);
            *states.entry(name.to_string()).or_default() += 1;
            match job.phase() {
                JobPhase::Queued => next.submit += 1,
                JobPhase::Submitting | JobPhase::Unresolved => next.resend += 1,
                _ if name == "downloading" => next.download += 1,
                JobPhase::Generating | JobPhase::TimedOut => next.reattach += 1,
                JobPhase::Downloading => next.download += 1,
                JobPhase::Done | JobPhase::Failed | JobPhase::Skipped => {}
            }
        }
        RunStatus {
            name,
            manifest,
            jobs: jobs.len(),
            states,
            spent_usd: spend.spent.usd(),
            reserved_usd: spend.reserved.usd(),
            cap_usd: spend.cap.map(Money::usd),
            failures: failure_groups(jobs),
            finished: jobs.iter().all(|j| j.phase().is_terminal()),
            retry_failed_usd: plan.map(|p| {
                jobs.iter()
                    .zip(&p.jobs)
                    .filter(|(j, _)| j.phase() == JobPhase::Failed)
                    .map(|(_, spec)| spec.estimate.cost)
                    .sum::<Money>()
                    .usd()
            }),
            next,
            removed,
            steps: match plan.filter(|p| p.has_steps()) {
                Some(p) => by_step(p, &names),
                None => Vec::new(),
            },
        }
    }

    pub(crate) fn render(&self, folder: &str) -> String {
        let mut out = String::new();
        let title = match (&self.name, &self.manifest) {
            (Some(n), Some(m)) => format!("{folder} ({n}, {m})"),
            (None, Some(m)) => format!("{folder} ({m})"),
            (Some(n), None) => format!("{folder} ({n})"),
            _ => folder.to_string(),
        };
        let _ = writeln!(out, "{title}");
        let _ = writeln!(
            out,
            "{} job{}: {}",
            self.jobs,
            if self.jobs == 1 { "" } else { "s" },
            state_list(&self.states)
        );
        if !self.steps.is_empty() {
            let _ = writeln!(out, "by step:");
            let width = self
                .steps
                .iter()
                .map(|r| 2 * r.depth + r.step.chars().count())
                .max()
                .unwrap_or(0);
            for row in &self.steps {
                let name = format!("{}{}", "  ".repeat(row.depth), row.step);
                let _ = writeln!(out, "  {name:<width$}  {}", state_list(&row.states));
            }
        }
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
        let failed = self.states.get("failed").copied().unwrap_or(0);
        if failed > 0 {
            let cost = self
                .retry_failed_usd
                .map_or(String::new(), |usd| format!(" (about {})", money(usd)));
            let _ = writeln!(
                out,
                "{failed} failed job(s): a plain rerun leaves them as they are; --retry-failed gives them new attempts{cost}"
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
