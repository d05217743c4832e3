//! A job's durable facts — everything the journal says about it — and the one fold from records to
//! facts. Replay applies it to every record it reads; the dispatcher applies it to every record it
//! emits; so what a resume knows and what the run knew are the same thing by construction. The
//! one reading of facts into a state is in `state`.

use super::record::{FailureKind, Record};
use crate::util::money::Money;
use std::collections::BTreeSet;

/// Where a job stood when its last record was written.
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

/// A finished video where the video store put it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredVideo {
    /// Relative to the output folder: `videos/<job id>.mp4`.
    pub path: String,
    pub bytes: u64,
    /// `algorithm:hex` (`blake3:…`; journals from before BLAKE3 give `sha256:…`).
    pub checksum: String,
}

/// Why a job was given up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.message)
    }
}

/// Everything the journal records of one job.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobFacts {
    pub phase: Option<Phase>,
    /// The latest attempt begun (1-based; 0 before any).
    pub attempt: u32,
    /// The idempotency key of the latest attempt.
    pub key: Option<String>,
    pub task_id: Option<String>,
    /// µ¢ held against the cap for the current attempt.
    pub reserved: Money,
    /// What the service billed for the task that completed.
    pub cost: Option<Money>,
    /// The video URL the completed task gave (signed URLs expire: a fresh one is asked for).
    pub url: Option<String>,
    pub video: Option<StoredVideo>,
    pub submitted_at: Option<String>,
    pub completed_at: Option<String>,
    /// What only some jobs have, boxed (`None` when all of it is empty): inline it was 152 of a
    /// job's 360 bytes, and a 100,000-job run holds every job's facts at once.
    rare: Option<Box<Rare>>,
}

/// The facts of uploads and failures: absent from most jobs.
#[derive(Debug, Clone, Default, PartialEq)]
struct Rare {
    /// The body the latest attempt sends, when it is not the plan's (uploaded local files).
    body: Option<String>,
    /// When that body stops being sendable (its uploads expire), RFC 3339.
    send_until: Option<String>,
    failure: Option<Failure>,
    /// Attempts whose task ended `failed`.
    failed_attempts: BTreeSet<u32>,
    last_error: Option<String>,
    /// Multipart uploads of its video begun and not ended: (object, upload id).
    open_uploads: Vec<(String, String)>,
}

impl JobFacts {
    /// Folds one record of this job in. Idempotent: the same record twice changes nothing more.
    pub fn apply(&mut self, record: &Record) {
        let h = self;
        match record {
            Record::Submitting {
                attempt,
                key,
                reserve,
                body,
                send_until,
                ..
            } => {
                h.attempt = h.attempt.max(*attempt);
                h.key = Some(key.clone());
                if body.is_some() || send_until.is_some() || h.rare.is_some() {
                    let rare = h.rare();
                    rare.body.clone_from(body);
                    rare.send_until.clone_from(send_until);
                }
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
                h.rare().last_error = Some(reason.clone());
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
                h.reserved = Money::ZERO;
                h.task_id = None;
                let rare = h.rare();
                rare.failed_attempts.insert(*attempt);
                rare.last_error = Some(message.clone());
                h.phase = Some(Phase::Waiting);
            }
            Record::Downloaded {
                path, bytes, checksum, ..
            } => {
                h.video = Some(StoredVideo {
                    path: path.clone(),
                    bytes: *bytes,
                    checksum: normalize_checksum(checksum),
                });
                h.phase = Some(Phase::Downloaded);
            }
            Record::Failed { kind, message, .. } => {
                h.reserved = Money::ZERO;
                let rare = h.rare();
                rare.failure = Some(Failure {
                    kind: *kind,
                    message: message.clone(),
                });
                rare.last_error = Some(message.clone());
                h.phase = Some(Phase::Failed);
            }
            Record::TimedOut { .. } => {
                if h.phase == Some(Phase::Submitted) {
                    h.phase = Some(Phase::TimedOut);
                }
            }
            Record::UploadBegun { object, upload_id, .. } => {
                let open = &mut h.rare().open_uploads;
                if !open.iter().any(|(_, id)| id == upload_id) {
                    open.push((object.clone(), upload_id.clone()));
                }
            }
            Record::UploadEnded { upload_id, .. } => {
                if let Some(rare) = h.rare.as_mut() {
                    rare.open_uploads.retain(|(_, id)| id != upload_id);
                }
            }
            Record::RunStarted { .. } => {}
        }
        h.tidy();
    }

    /// Attempts whose task ended `failed`.
    pub fn task_failures(&self) -> u32 {
        self.rare.as_ref().map_or(0, |r| r.failed_attempts.len() as u32)
    }

    /// The body the latest attempt sends, when it is not the plan's (uploaded local files).
    pub fn body(&self) -> Option<&str> {
        self.rare.as_ref()?.body.as_deref()
    }

    /// When that body stops being sendable (its uploads expire), RFC 3339.
    pub fn send_until(&self) -> Option<&str> {
        self.rare.as_ref()?.send_until.as_deref()
    }

    /// Why the job was given up.
    pub fn failure(&self) -> Option<&Failure> {
        self.rare.as_ref()?.failure.as_ref()
    }

    /// The latest error recorded (a refused create, a failed attempt, the failure).
    pub fn last_error(&self) -> Option<&str> {
        self.rare.as_ref()?.last_error.as_deref()
    }

    /// Multipart uploads of its video begun and not ended: (object, upload id).
    pub fn open_uploads(&self) -> &[(String, String)] {
        self.rare.as_ref().map_or(&[], |r| &r.open_uploads)
    }

    fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_default()
    }

    /// Lets the rare part go once nothing is left in it, so equal facts compare equal.
    fn tidy(&mut self) {
        if self.rare.as_deref().is_some_and(|r| *r == Rare::default()) {
            self.rare = None;
        }
    }
}

/// A checksum as recorded by any version: journals from before BLAKE3 hold bare SHA-256 hex.
fn normalize_checksum(recorded: &str) -> String {
    if recorded.contains(':') {
        recorded.to_string()
    } else {
        format!("sha256:{recorded}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rare part is let go once empty: facts whose upload began and ended compare equal to
    /// facts that never had one (the shared sweep's writer and its tests compare facts).
    #[test]
    fn facts_emptied_of_their_rare_part_equal_facts_that_never_had_one() {
        let mut facts = JobFacts::default();
        facts.apply(&Record::UploadBegun {
            job: "j".into(),
            object: "videos/j.mp4".into(),
            upload_id: "u-1".into(),
            at: "2026-12-07T00:00:00Z".into(),
        });
        assert_eq!(facts.open_uploads().len(), 1);
        assert_ne!(facts, JobFacts::default());
        facts.apply(&Record::UploadEnded {
            job: "j".into(),
            upload_id: "u-1".into(),
            at: "2026-12-07T00:00:01Z".into(),
        });
        assert!(facts.open_uploads().is_empty());
        assert_eq!(facts, JobFacts::default());
        assert!(facts.rare.is_none(), "nothing boxed for nothing");
    }
}
