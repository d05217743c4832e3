//! Where a job stands: its state with the data each step needs (`JobState`), the state's kind
//! (`JobPhase`, what the runner counts), the one reading of durable facts into a state
//! (`JobFacts::state`) and the one name of a state (`JobState::name`). A run's dispatcher moves
//! jobs through these states; `status`, the reports and the database read jobs at rest with the
//! same reading, so a job is said one way everywhere.

use super::facts::{Failure, JobFacts, Phase, StoredVideo};
use super::record::FailureKind;
use crate::util::money::Money;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JobPhase {
    /// Waiting for admission (rate, concurrency, spend cap).
    Queued,
    /// The intent is journaled; the create is being sent (or re-sent with the same key).
    Submitting,
    /// The task exists and is generating; polled.
    Generating,
    /// The task finished; its video is being fetched.
    Downloading,
    Done,
    Failed,
    /// The task outlived its deadline; a rerun re-attaches to it.
    TimedOut,
    /// The create's outcome stayed unknown through every retry; a rerun re-sends it with the same key.
    Unresolved,
    /// A step whose parent failed: never created.
    Skipped,
}

impl JobPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            JobPhase::Queued => "queued",
            JobPhase::Submitting => "submitting",
            JobPhase::Generating => "generating",
            JobPhase::Downloading => "downloading",
            JobPhase::Done => "completed",
            JobPhase::Failed => "failed",
            JobPhase::TimedOut => "timed_out",
            JobPhase::Unresolved => "unresolved",
            JobPhase::Skipped => "skipped",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, JobPhase::Done | JobPhase::Failed | JobPhase::Skipped)
    }
}

/// Where a job is during this run, each step with what it needs: a create in flight has its key,
/// a generating task its id, a finished job its stored video. There is no optional key or task
/// id to fall back on.
#[derive(Debug, Clone, PartialEq)]
pub enum JobState {
    Queued,
    /// A step waiting for its parent's task to complete (not in the admission queue).
    Waiting,
    /// A step whose parent failed: never created, nothing held. Not journaled: a rerun that gives
    /// the parent new attempts (`--retry-failed`) lets it wait again.
    Skipped {
        reason: String,
    },
    /// Admitted, `reserve` held against the cap: its local files are being uploaded; nothing is
    /// journaled or sent for this body yet.
    Preparing {
        reserve: Money,
    },
    Submitting {
        key: String,
    },
    Generating {
        task_id: String,
    },
    /// Finished and paid: its video is being fetched (from `url`, else a fresh URL is asked for).
    Downloading {
        task_id: String,
        url: Option<String>,
    },
    Done {
        video: StoredVideo,
    },
    Failed {
        failure: Failure,
    },
    /// Left for a rerun (a deadline, repeated transfer failures): whatever it holds — a task, a
    /// reservation, a paid video — stays in the journal.
    Parked,
    /// The create's outcome stayed unknown: a rerun re-sends it with the same key.
    Unresolved {
        key: String,
    },
    /// A job of a shared sweep this worker does not hold: another worker's, or nobody's yet.
    Elsewhere,
}

impl JobState {
    pub fn phase(&self) -> JobPhase {
        match self {
            JobState::Queued | JobState::Waiting | JobState::Elsewhere => JobPhase::Queued,
            JobState::Skipped { .. } => JobPhase::Skipped,
            JobState::Preparing { .. } => JobPhase::Submitting,
            JobState::Submitting { .. } => JobPhase::Submitting,
            JobState::Generating { .. } => JobPhase::Generating,
            JobState::Downloading { .. } => JobPhase::Downloading,
            JobState::Done { .. } => JobPhase::Done,
            JobState::Failed { .. } => JobPhase::Failed,
            JobState::Parked => JobPhase::TimedOut,
            JobState::Unresolved { .. } => JobPhase::Unresolved,
        }
    }

    /// The one name of where a job stands — what `status`, summary.json, results.csv, the gallery,
    /// the end summary and the progress line say — from its state and its durable facts: a job
    /// never tried is `not_started`, one between attempts `waiting`; a paid job left for a rerun,
    /// or whose video went missing, is `downloading` or `file_missing` (never `failed`).
    pub fn name(&self, facts: &JobFacts) -> &'static str {
        match self {
            JobState::Queued | JobState::Elsewhere if facts.attempt == 0 => "not_started",
            JobState::Queued | JobState::Elsewhere => "waiting",
            JobState::Waiting => "waiting_for_parent",
            JobState::Skipped { .. } => "skipped",
            JobState::Preparing { .. } | JobState::Submitting { .. } => "submitting",
            JobState::Generating { .. } => "generating",
            JobState::Parked if facts.cost.is_some() => "downloading",
            JobState::Parked => "timed_out",
            JobState::Downloading { .. } if facts.phase == Some(Phase::Downloaded) => "file_missing",
            JobState::Downloading { .. } => "downloading",
            JobState::Done { .. } => "completed",
            JobState::Failed { .. } => "failed",
            JobState::Unresolved { .. } => "unresolved",
        }
    }
}

impl JobFacts {
    /// The one reading of a job's durable facts: the state it is in at rest, which is the state a
    /// resume starts it in. `video_ok` says whether its recorded video is still in the video store
    /// as recorded. A paid video is never given up: whatever failed, it is fetched again.
    pub fn state(&self, video_ok: bool) -> JobState {
        let download = || match &self.task_id {
            Some(task_id) => JobState::Downloading {
                task_id: task_id.clone(),
                url: self.url.clone(),
            },
            // A paid video whose task id was never recorded cannot be fetched (no journal this
            // tool writes has one: the task id comes in the same record as the cost).
            None => self.failed(),
        };
        let reattach = |task_id: &String| match self.phase {
            Some(Phase::TimedOut) => JobState::Parked,
            _ => JobState::Generating {
                task_id: task_id.clone(),
            },
        };
        match self.phase {
            None | Some(Phase::Waiting) => JobState::Queued,
            Some(Phase::Submitting) => match &self.key {
                Some(key) => JobState::Submitting { key: key.clone() },
                None => JobState::Queued,
            },
            Some(Phase::Submitted | Phase::TimedOut) => match &self.task_id {
                Some(task_id) => reattach(task_id),
                None => JobState::Queued,
            },
            Some(Phase::Downloaded) => match (&self.video, self.cost, &self.task_id) {
                // A repaired journal can lose the record of what a task cost: ask the task again,
                // so the spend counts what the service billed.
                (Some(_), None, Some(task_id)) => reattach(task_id),
                (Some(video), _, _) if video_ok => JobState::Done { video: video.clone() },
                _ => download(),
            },
            Some(Phase::Completed) => download(),
            Some(Phase::Failed) if self.cost.is_some() && self.task_id.is_some() => download(),
            Some(Phase::Failed) => self.failed(),
        }
    }

    fn failed(&self) -> JobState {
        JobState::Failed {
            failure: self.failure().cloned().unwrap_or(Failure {
                kind: FailureKind::NotFound,
                message: "the journal records no task for this job".into(),
            }),
        }
    }
}
