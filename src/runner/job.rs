//! One job during a run: its durable facts, its state (each variant with the data its step
//! needs), and the events and operations that move it. The transitions are the dispatcher's.

use crate::client::uploads::{PreparedBody, UploadError};
use crate::client::{ApiError, CreatedTask, TaskView};
use crate::journal::{Failure, JobFacts, Record, StoredVideo, WriteError};
pub use crate::journal::{JobPhase, JobState};
use crate::output::download::{DownloadError, Downloaded};
use crate::util::money::Money;
use std::time::Duration;
use tokio::time::Instant;

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
    /// An intent made after the job's uploads, waiting to be handed out with its create. Boxed,
    /// as the next field: a job holds one only for moments, and inline they were half of every
    /// job's memory (a `JobRun` of 1,152 bytes, 115 MB for 100,000 jobs; 592 boxed).
    pub(super) intent: Option<Box<Record>>,
    /// A shared sweep: the facts before the intent in flight, should the database refuse it.
    pub(super) before_intent: Option<Box<JobFacts>>,
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
    /// Re-sends of its create of unknown outcome the service refused outright (4xx), this run.
    pub(super) refused_replays: u8,
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
            refused_replays: 0,
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
            Some(f) => JobRun::new(f.clone(), f.state(video_ok)),
        }
    }

    pub fn phase(&self) -> JobPhase {
        self.state.phase()
    }

    /// The name of where the job stands, as every report says it (`JobState::name`).
    pub fn state_name(&self) -> &'static str {
        self.state.name(&self.facts)
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
        self.note
            .clone()
            .or_else(|| self.facts.last_error().map(str::to_string))
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
    /// A shared sweep: renew this worker's leases, give back the jobs it is `done` with (any
    /// still leased to it), and hear how the sweep stands.
    Heartbeat {
        in_flight: usize,
        done: Vec<usize>,
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

#[cfg(test)]
mod tests {
    /// A run holds one `JobRun` per job of the plan at once (100,000 in the S3 benchmark, twice at
    /// a shared sweep's end): their size is most of a large run's memory, and it once grew from
    /// 592 to 1,152 bytes unnoticed between sessions (the S3 run went from 142 to 216 MB). Growing
    /// either past these sizes is a decision to make with `bench/run.sh --only S3,D2`, not by accident.
    #[test]
    fn a_job_stays_small() {
        use std::mem::size_of;
        assert!(
            size_of::<crate::journal::JobFacts>() <= 216,
            "JobFacts is {} bytes",
            size_of::<crate::journal::JobFacts>()
        );
        assert!(
            size_of::<super::JobRun>() <= 448,
            "JobRun is {} bytes",
            size_of::<super::JobRun>()
        );
    }
}
