//! One job during a run: its durable facts, its state (each variant with the data its step
//! needs), and the events and operations that move it. The transitions are the dispatcher's.

use crate::client::uploads::{PreparedBody, UploadError};
use crate::client::{ApiError, CreatedTask, TaskView};
use crate::journal::{Failure, FailureKind, JobFacts, Phase, Record, Resume, StoredVideo, WriteError};
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

    /// The state a resume starts a job in, from the one classification of its facts.
    pub fn resumed(facts: &JobFacts, video_ok: bool) -> JobState {
        match facts.resume(video_ok) {
            Resume::Submit => JobState::Queued,
            Resume::Resend { key } => JobState::Submitting { key },
            Resume::Reattach { .. } if facts.phase == Some(Phase::TimedOut) => JobState::Parked,
            Resume::Reattach { task_id } => JobState::Generating { task_id },
            Resume::Download { task_id, url } => JobState::Downloading { task_id, url },
            Resume::Done { video } => JobState::Done { video },
            Resume::Failed => JobState::Failed {
                failure: facts.failure.clone().unwrap_or(Failure {
                    kind: FailureKind::NotFound,
                    message: "the journal records no task for this job".into(),
                }),
            },
        }
    }
}

/// One job during a run: its durable facts (changed only by the records the dispatcher emits,
/// through the journal's own fold), its state, and the bookkeeping of this run.
#[derive(Debug, Clone)]
pub struct JobRun {
    pub facts: JobFacts,
    pub state: JobState,
    /// The latest error met in this run, journaled or not (a transient one is not).
    pub note: Option<String>,
    pub polls: u32,
    pub(super) submitted: Option<Instant>,
    pub(super) last_unfinished: Duration,
    /// The timer of the look planned now; an earlier plan's timer is ignored.
    pub(super) poll_seq: u64,
    /// When that look is planned.
    pub(super) poll_at: Option<Instant>,
    /// Not looked at before this (a `Retry-After` on a status answer).
    pub(super) not_before: Option<Instant>,
    /// An intent made after the job's uploads, waiting to be handed out with its create.
    pub(super) intent: Option<Record>,
    /// A shared sweep: the facts before the intent in flight, should the database refuse it.
    pub(super) before_intent: Option<JobFacts>,
    /// Whether its completion time teaches the schedule (not a task found on resume).
    pub(super) learnable: bool,
    pub(super) retries: u32,
    /// 409 `source_task_not_ready` answers met in this run.
    pub(super) not_ready: u32,
    /// First sends held back because their uploads would have expired before the service saw them.
    pub(super) unsent: u32,
    pub(super) refetches: u32,
    pub(super) busy: bool,
    /// A send of the current key may have made a task (a lost answer, or an intent found on
    /// resume): until a task id or a replay comes back, no error answer releases the job.
    pub(super) outcome_unknown: bool,
    /// When the job last began waiting for its video (the download deadline counts from here).
    pub(super) downloading_since: Option<Instant>,
    /// Failed attempts that do not count against `--max-attempts` in this run (a job given new
    /// attempts by `--retry-failed`).
    pub(super) failures_before: u32,
    /// A shared sweep: the fence of this worker's claim on the job (none while it holds none).
    pub(super) fence: Option<crate::store::Fence>,
}

impl JobRun {
    pub fn new(facts: JobFacts, state: JobState) -> JobRun {
        JobRun {
            facts,
            state,
            note: None,
            polls: 0,
            submitted: None,
            last_unfinished: Duration::ZERO,
            poll_seq: 0,
            poll_at: None,
            not_before: None,
            learnable: true,
            intent: None,
            before_intent: None,
            retries: 0,
            not_ready: 0,
            unsent: 0,
            refetches: 0,
            busy: false,
            outcome_unknown: false,
            downloading_since: None,
            failures_before: 0,
            fence: None,
        }
    }

    pub fn queued() -> JobRun {
        JobRun::new(JobFacts::default(), JobState::Queued)
    }

    /// A job as a folder shows it without running anything: `video_ok` says whether its recorded
    /// video is in place.
    pub fn at_rest(facts: Option<&JobFacts>, video_ok: bool) -> JobRun {
        match facts {
            None => JobRun::queued(),
            Some(f) => JobRun::new(f.clone(), JobState::resumed(f, video_ok)),
        }
    }

    pub fn phase(&self) -> JobPhase {
        self.state.phase()
    }

    /// The name of where the job stands, as results.csv, the gallery, the summary and `status`
    /// say it: the phase's name, except that a paid job left for a rerun is `downloading` (its
    /// video is what a rerun fetches), as the journal's own reading has it.
    pub fn state_name(&self) -> &'static str {
        match self.phase() {
            JobPhase::TimedOut if self.facts.cost.is_some() => "downloading",
            other => other.as_str(),
        }
    }

    /// Whether its local files are being uploaded (nothing sent for it yet).
    pub fn uploading(&self) -> bool {
        matches!(self.state, JobState::Preparing { .. })
    }

    /// The video, once it is stored and verified.
    pub fn video(&self) -> Option<&StoredVideo> {
        match &self.state {
            JobState::Done { video } => Some(video),
            _ => None,
        }
    }

    pub fn failure(&self) -> Option<&Failure> {
        match &self.state {
            JobState::Failed { failure } => Some(failure),
            _ => None,
        }
    }

    /// What went wrong, for a row or a summary: why it failed, else (while unfinished) the
    /// latest error met.
    pub fn error(&self) -> Option<String> {
        if let Some(failure) = self.failure() {
            return Some(failure.to_string());
        }
        if let JobState::Skipped { reason } = &self.state {
            return Some(reason.clone());
        }
        if self.phase().is_terminal() {
            return None;
        }
        self.note.clone().or_else(|| self.facts.last_error.clone())
    }
}

/// Work for the executor to start.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Upload the job's local files and make its body (`request`, else the plan's, with their
    /// URLs).
    Prepare {
        job: usize,
        request: Option<String>,
    },
    /// POST the job's request with `key` (or `body`, when the request is not the plan's).
    /// `intent`, when present, must be durable first.
    Submit {
        job: usize,
        key: String,
        intent: Option<Box<Record>>,
        body: Option<String>,
        /// A first send is sent only before this (its uploads' life); a resend always goes out,
        /// byte for byte the first send.
        send_until: Option<std::time::SystemTime>,
    },
    Poll {
        job: usize,
        task_id: String,
    },
    Download {
        job: usize,
        url: String,
    },
    /// A shared sweep: claim up to `n` jobs nobody holds.
    Claim {
        n: usize,
    },
    /// A shared sweep: renew this worker's leases, and hear how the sweep stands.
    Heartbeat {
        in_flight: usize,
    },
}

impl Op {
    /// The job the operation works on (none for a shared sweep's claims and heartbeats).
    pub fn job(&self) -> Option<usize> {
        match self {
            Op::Prepare { job, .. } | Op::Submit { job, .. } | Op::Poll { job, .. } | Op::Download { job, .. } => {
                Some(*job)
            }
            Op::Claim { .. } | Op::Heartbeat { .. } => None,
        }
    }
}

/// What an operation came back with.
#[derive(Debug)]
pub enum Event {
    Prepared {
        job: usize,
        result: Result<PreparedBody, UploadError>,
    },
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
    /// An operation dropped because the job's claim was lost: nothing to take from it.
    Cancelled { job: usize },
    /// Jobs this worker claimed, with every record they and their parents have.
    Claimed {
        result: Result<crate::store::postgres::Claimed, String>,
    },
    /// The jobs this worker still holds (each with its claim's fence), and the sweep's totals.
    Heartbeat {
        result: Result<(Vec<(usize, crate::store::Fence)>, crate::store::postgres::SweepTotals), String>,
    },
}

impl Event {
    /// The job the event is about (none for a shared sweep's claims and heartbeats).
    pub fn job(&self) -> Option<usize> {
        match self {
            Event::Prepared { job, .. }
            | Event::Submitted { job, .. }
            | Event::Polled { job, .. }
            | Event::Downloaded { job, .. }
            | Event::JournalFailed { job, .. }
            | Event::Cancelled { job } => Some(*job),
            Event::Claimed { .. } | Event::Heartbeat { .. } => None,
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
