//! Replay: the journal's records folded into where each job stands and what the spend ledger
//! holds. Pure and idempotent: a record seen twice changes nothing the second time.

use super::record::{FailureKind, Record};
use crate::util::money::Money;
use std::collections::HashMap;

/// Where a job stood when the journal ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The POST may or may not have happened: re-send with the same key.
    Submitting,
    /// The task exists: poll it.
    Submitted,
    /// No task is live (a refused create or a failed attempt): submit the next attempt.
    Waiting,
    /// Generated: download it.
    Completed,
    /// On disk: verify it.
    Downloaded,
    /// Given up.
    Failed,
    /// Past its deadline: re-attach and poll.
    TimedOut,
}

/// What a resume does with a job: the one reading of journaled state that `run`, `status`,
/// summary.json, results.csv and the gallery share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// Never created, or waiting for its next attempt: create it (a new key).
    Submit,
    /// A create whose outcome is unknown: re-send it with the same key and body.
    Resend,
    /// A task exists and has not finished (or was left at its deadline): poll it.
    Reattach,
    /// Paid for, its video not (or no longer) on disk: fetch it.
    Download,
    /// On disk as recorded.
    Done,
    /// Given up, and nothing was paid for it.
    Failed,
}

impl JobHistory {
    /// What a resume does with this job; `file_ok` says whether its recorded video is on disk.
    pub fn resume(&self, file_ok: bool) -> Resume {
        let paid = self.task_id.is_some() && self.cost.is_some();
        match self.phase {
            None | Some(Phase::Waiting) => Resume::Submit,
            Some(Phase::Submitting) => Resume::Resend,
            Some(Phase::Submitted | Phase::TimedOut) => Resume::Reattach,
            Some(Phase::Completed) => Resume::Download,
            Some(Phase::Downloaded) if file_ok => Resume::Done,
            Some(Phase::Downloaded) => Resume::Download,
            // A paid video is never given up: whatever failed, a resume fetches it again.
            Some(Phase::Failed) if paid => Resume::Download,
            Some(Phase::Failed) => Resume::Failed,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobHistory {
    pub phase: Option<Phase>,
    /// The latest attempt begun (1-based; 0 before any).
    pub attempt: u32,
    pub key: Option<String>,
    pub task_id: Option<String>,
    /// µ¢ held against the cap for the current attempt.
    pub reserved: Money,
    pub cost: Option<Money>,
    pub url: Option<String>,
    /// (path relative to the output folder, bytes, checksum as `algorithm:hex`)
    pub file: Option<(String, u64, String)>,
    pub failure: Option<(FailureKind, String)>,
    /// Attempts whose task ended `failed`.
    pub failed_attempts: std::collections::BTreeSet<u32>,
    pub last_error: Option<String>,
    pub submitted_at: Option<String>,
    pub completed_at: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Replayed {
    pub run_id: Option<String>,
    /// The manifest and cap of the latest run.
    pub manifest: Option<String>,
    pub cap: Option<Money>,
    /// The latest run's recorded settings (none for journals written before they were recorded).
    pub settings: Option<super::RecordedSettings>,
    pub jobs: HashMap<String, JobHistory>,
    /// Billed so far.
    pub spent: Money,
    /// Held for attempts whose outcome is not known yet.
    pub reserved: Money,
}

/// The run id inside an idempotency key (`kb1-<run id>-<job id>-a<n>`; run ids are 12 hex).
fn run_id_of_key(key: &str) -> Option<String> {
    let id = key.strip_prefix("kb1-")?.get(..12)?;
    id.bytes().all(|b| b.is_ascii_hexdigit()).then(|| id.to_string())
}

pub fn replay(records: &[Record]) -> Replayed {
    let mut out = Replayed::default();
    for record in records {
        out.apply(record);
    }
    out.finish();
    out
}

/// Reads the journal at `path` and replays it as it goes, never holding all its records.
pub fn read_replayed(path: &std::path::Path) -> Result<(Replayed, super::Recovery), super::JournalError> {
    let mut out = Replayed::default();
    let recovery = super::read_each(path, |record| out.apply(&record))?;
    out.finish();
    Ok((out, recovery))
}

impl Replayed {
    /// Folds one record in; `finish` once after the last.
    pub fn apply(&mut self, record: &Record) {
        let out = self;
        if let Record::RunStarted {
            run_id,
            manifest,
            cap,
            settings,
            ..
        } = record
        {
            out.run_id.get_or_insert_with(|| run_id.clone());
            out.manifest = manifest.clone().or(out.manifest.take());
            out.cap = cap.map(Money::from_micro_cents);
            out.settings = settings.clone().or(out.settings.take());
            return;
        }
        let Some(job) = record.job() else { return };
        let h = match out.jobs.get_mut(job) {
            Some(h) => h,
            None => out.jobs.entry(job.to_string()).or_default(),
        };
        match record {
            Record::Submitting {
                attempt, key, reserve, ..
            } => {
                // The keys carry the run id: a journal whose first line was damaged keeps it.
                if out.run_id.is_none() {
                    out.run_id = run_id_of_key(key);
                }
                h.attempt = h.attempt.max(*attempt);
                h.key = Some(key.clone());
                h.reserved = Money::from_micro_cents(*reserve);
                h.phase = Some(Phase::Submitting);
            }
            Record::Submitted { task_id, at, .. } => {
                h.task_id = Some(task_id.clone());
                h.submitted_at.get_or_insert_with(|| at.clone());
                if h.phase == Some(Phase::Submitting) || h.phase.is_none() {
                    h.phase = Some(Phase::Submitted);
                }
            }
            Record::Unsubmitted { reason, .. } => {
                h.reserved = Money::ZERO;
                h.last_error = Some(reason.clone());
                h.phase = Some(Phase::Waiting);
            }
            Record::Completed {
                task_id, url, cost, at, ..
            } => {
                h.reserved = Money::ZERO;
                h.task_id = Some(task_id.clone());
                h.url = Some(url.clone());
                h.cost = Some(Money::from_micro_cents(*cost));
                h.completed_at.get_or_insert_with(|| at.clone());
                if h.phase != Some(Phase::Downloaded) {
                    h.phase = Some(Phase::Completed);
                }
            }
            Record::AttemptFailed { attempt, message, .. } => {
                h.failed_attempts.insert(*attempt);
                h.reserved = Money::ZERO;
                h.task_id = None;
                h.last_error = Some(message.clone());
                h.phase = Some(Phase::Waiting);
            }
            Record::Downloaded {
                path, bytes, checksum, ..
            } => {
                h.file = Some((
                    path.clone(),
                    *bytes,
                    crate::output::download::normalize_checksum(checksum),
                ));
                h.phase = Some(Phase::Downloaded);
            }
            Record::Failed { kind, message, .. } => {
                h.reserved = Money::ZERO;
                h.failure = Some((*kind, message.clone()));
                h.phase = Some(Phase::Failed);
            }
            Record::TimedOut { .. } => {
                if h.phase == Some(Phase::Submitted) {
                    h.phase = Some(Phase::TimedOut);
                }
            }
            Record::RunStarted { .. } => {}
        }
    }

    /// The ledger's totals, from every job's state.
    pub fn finish(&mut self) {
        self.spent = self.jobs.values().filter_map(|h| h.cost).sum();
        self.reserved = self.jobs.values().map(|h| h.reserved).sum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_download_recorded_before_blake3_keeps_its_sha256() {
        let line = br#"{"at":"2026-11-21T19:02:48.881522Z","bytes":2979,"job":"a","path":"videos/a.mp4","sha256":"baa1b9394752b3ccbddb67b88db53141881198f38e3c8b16b6e51482324d8500","t":"downloaded","v":1}
{"at":"2026-11-22T10:00:00Z","bytes":5,"job":"b","path":"videos/b.mp4","checksum":"blake3:00ff","t":"downloaded","v":1}
"#;
        let (records, _) = crate::journal::reader::parse_bytes(line).unwrap();
        let history = replay(&records);
        assert_eq!(
            history.jobs["a"].file.as_ref().map(|f| f.2.as_str()),
            Some("sha256:baa1b9394752b3ccbddb67b88db53141881198f38e3c8b16b6e51482324d8500")
        );
        assert_eq!(
            history.jobs["b"].file.as_ref().map(|f| f.2.as_str()),
            Some("blake3:00ff")
        );
    }

    fn at() -> String {
        "t".into()
    }

    #[test]
    fn the_ledger_follows_reserve_settle_release() {
        let records = vec![
            Record::RunStarted {
                run_id: "r1".into(),
                at: at(),
                manifest: None,
                cap: None,
                settings: None,
            },
            Record::Submitting {
                job: "a".into(),
                attempt: 1,
                key: "k1".into(),
                reserve: 70,
                at: at(),
            },
            Record::Submitting {
                job: "b".into(),
                attempt: 1,
                key: "k2".into(),
                reserve: 50,
                at: at(),
            },
            Record::Submitted {
                job: "a".into(),
                attempt: 1,
                task_id: "t1".into(),
                at: at(),
            },
            Record::Completed {
                job: "a".into(),
                task_id: "t1".into(),
                url: "u".into(),
                cost: 60,
                at: at(),
            },
            Record::Submitted {
                job: "b".into(),
                attempt: 1,
                task_id: "t2".into(),
                at: at(),
            },
            Record::AttemptFailed {
                job: "b".into(),
                attempt: 1,
                task_id: "t2".into(),
                message: "no".into(),
                at: at(),
            },
        ];
        let r = replay(&records);
        assert_eq!(r.run_id.as_deref(), Some("r1"));
        assert_eq!((r.spent.micro_cents(), r.reserved.micro_cents()), (60, 0));
        assert_eq!(r.jobs["a"].phase, Some(Phase::Completed));
        assert_eq!(r.jobs["b"].phase, Some(Phase::Waiting));
        assert_eq!(r.jobs["b"].task_id, None);
    }

    #[test]
    fn replay_is_idempotent() {
        let records = vec![
            Record::Submitting {
                job: "a".into(),
                attempt: 1,
                key: "k1".into(),
                reserve: 70,
                at: at(),
            },
            Record::Submitted {
                job: "a".into(),
                attempt: 1,
                task_id: "t1".into(),
                at: at(),
            },
            Record::Completed {
                job: "a".into(),
                task_id: "t1".into(),
                url: "u".into(),
                cost: 70,
                at: at(),
            },
            Record::Downloaded {
                job: "a".into(),
                path: "videos/a.mp4".into(),
                bytes: 3,
                checksum: "blake3:00".into(),
                at: at(),
            },
        ];
        let once = replay(&records);
        let twice = replay(&[records.clone(), records].concat());
        assert_eq!(once, twice);
        assert_eq!(once.jobs["a"].phase, Some(Phase::Downloaded));
    }
}
