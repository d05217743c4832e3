//! One job's state during a run, and the events and operations that move it. The transitions
//! themselves are the dispatcher's; this file only names things.

use crate::client::{ApiError, CreatedTask, TaskView};
use crate::journal::{FailureKind, Record, WriteError};
use crate::output::download::{DownloadError, Downloaded};
use crate::util::money::Money;
use std::time::Duration;
use tokio::time::Instant;

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
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, JobPhase::Done | JobPhase::Failed)
    }
}

#[derive(Debug, Clone)]
pub struct JobRun {
    pub phase: JobPhase,
    /// POST attempts made (each with its own idempotency key).
    pub attempt: u32,
    pub key: Option<String>,
    pub task_id: Option<String>,
    /// µ¢ held against the cap for the attempt in flight.
    pub reserved: Money,
    pub cost: Option<Money>,
    pub url: Option<String>,
    /// (path relative to the output folder, bytes, checksum as `algorithm:hex`)
    pub file: Option<(String, u64, String)>,
    pub failure: Option<(FailureKind, String)>,
    pub last_error: Option<String>,
    pub submitted_at: Option<String>,
    pub completed_at: Option<String>,
    pub task_failures: u32,
    pub polls: u32,
    pub(super) submitted: Option<Instant>,
    pub(super) last_unfinished: Duration,
    pub(super) retries: u32,
    pub(super) refetches: u32,
    pub(super) busy: bool,
    /// A send of the current key may have made a task (a lost answer, or an intent found on
    /// resume): until a task id or a replay comes back, no error answer releases the job.
    pub(super) outcome_unknown: bool,
    /// When the job last began waiting for its video (the download deadline counts from here).
    pub(super) downloading_since: Option<Instant>,
}

impl JobRun {
    pub fn queued() -> JobRun {
        JobRun {
            phase: JobPhase::Queued,
            attempt: 0,
            key: None,
            task_id: None,
            reserved: Money::ZERO,
            cost: None,
            url: None,
            file: None,
            failure: None,
            last_error: None,
            submitted_at: None,
            completed_at: None,
            task_failures: 0,
            polls: 0,
            submitted: None,
            last_unfinished: Duration::ZERO,
            retries: 0,
            refetches: 0,
            busy: false,
            outcome_unknown: false,
            downloading_since: None,
        }
    }
}

impl JobRun {
    /// What the journal recorded of a job; the phase is left `Queued` for the caller to decide.
    pub fn from_history(h: &crate::journal::JobHistory) -> JobRun {
        JobRun {
            attempt: h.attempt,
            key: h.key.clone(),
            task_id: h.task_id.clone(),
            reserved: h.reserved,
            cost: h.cost,
            url: h.url.clone(),
            file: h.file.clone(),
            failure: h.failure.clone(),
            last_error: h.last_error.clone(),
            submitted_at: h.submitted_at.clone(),
            completed_at: h.completed_at.clone(),
            task_failures: h.failed_attempts.len() as u32,
            ..JobRun::queued()
        }
    }

    /// A job as a folder shows it without running anything: `file_ok` says whether its recorded
    /// video is on disk.
    pub fn at_rest(h: Option<&crate::journal::JobHistory>, file_ok: bool) -> JobRun {
        use crate::journal::{Phase, Resume};
        let Some(h) = h else { return JobRun::queued() };
        let mut job = JobRun::from_history(h);
        job.phase = match h.resume(file_ok) {
            Resume::Submit => JobPhase::Queued,
            Resume::Resend => JobPhase::Submitting,
            Resume::Reattach if h.phase == Some(Phase::TimedOut) => JobPhase::TimedOut,
            Resume::Reattach => JobPhase::Generating,
            Resume::Download => {
                job.failure = None;
                JobPhase::Downloading
            }
            Resume::Done => JobPhase::Done,
            Resume::Failed => JobPhase::Failed,
        };
        job
    }
}

/// Work for the executor to start.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// POST the job's request with `key`. `intent`, when present, must be durable first.
    Submit {
        job: usize,
        key: String,
        intent: Option<Record>,
    },
    Poll {
        job: usize,
        task_id: String,
    },
    Download {
        job: usize,
        url: String,
    },
}

/// What an operation came back with.
#[derive(Debug)]
pub enum Event {
    Submitted {
        job: usize,
        result: Result<CreatedTask, ApiError>,
    },
    Polled {
        job: usize,
        result: Result<TaskView, ApiError>,
    },
    Downloaded {
        job: usize,
        result: Result<Downloaded, DownloadError>,
    },
    /// The intent record could not be made durable, so the create was not sent.
    JournalFailed { job: usize, error: WriteError },
}

impl Event {
    pub fn job(&self) -> usize {
        match self {
            Event::Submitted { job, .. }
            | Event::Polled { job, .. }
            | Event::Downloaded { job, .. }
            | Event::JournalFailed { job, .. } => *job,
        }
    }
}

/// Why the run stopped submitting (or stopped altogether), most severe first.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum StopReason {
    Auth(String),
    Local(String),
    Interrupted,
    Credits(String),
    CapReached { needed: Money, left: Money },
    MaxRuntime,
}
