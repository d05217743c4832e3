//! Journal records. Each is one JSON line `{"v":1,"t":"<kind>",…}`; fields are only ever added.

use serde::{Deserialize, Serialize};

pub const VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The service refused the request as invalid (400/422).
    Invalid,
    /// The idempotency key met another body (409).
    Conflict,
    /// The task ended `failed` on every attempt allowed.
    TaskFailed,
    /// The service does not know the task.
    NotFound,
    /// The video could not be downloaded or verified.
    Download,
    /// A local input file could not be uploaded (nothing was created for the job).
    Upload,
    /// A continuation's source task cannot be continued (422 `source_task_unusable`,
    /// `continuation_not_supported`), or never became ready for it.
    Continuation,
    /// Anything else the service refused.
    Refused,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Invalid => "invalid",
            FailureKind::Conflict => "conflict",
            FailureKind::TaskFailed => "task_failed",
            FailureKind::NotFound => "not_found",
            FailureKind::Download => "download",
            FailureKind::Upload => "upload",
            FailureKind::Continuation => "continuation",
            FailureKind::Refused => "refused",
        }
    }
}

/// What a run was started with, beyond the cap: a resume keeps each unless a flag replaces it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RecordedSettings {
    /// API requests per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// Attempts per job when tasks end `failed`: a rerun without `--max-attempts` keeps it, so it
    /// never gives failed jobs attempts that `status` did not show.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// The RunAPI base URL (never with credentials: userinfo is refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_base: Option<String>,
    /// The run went to the built-in simulator.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub simulate: bool,
    /// The simulator's speed (`--time-scale`) of a simulated run: a resume keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_scale: Option<f64>,
    /// Where the cap came from: `given` (a flag or the manifest), `default` (the estimate, made
    /// again by each resume) or `none` (lifted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap_source: Option<String>,
    /// Where videos and results went when not beside the journal (`s3://bucket/prefix`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Record {
    /// A run (or a resume) began. The first one fixes the run id that idempotency keys derive from.
    RunStarted {
        run_id: String,
        at: String,
        /// The manifest as given on the command line.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        manifest: Option<String>,
        /// The spend cap in µ¢, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cap: Option<u64>,
        /// The limits and target this run used, which a resume keeps unless a flag replaces them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        settings: Option<RecordedSettings>,
    },
    /// Intent: this attempt is about to be POSTed with this key; `reserve` µ¢ are held against the cap.
    Submitting {
        job: String,
        attempt: u32,
        key: String,
        reserve: u64,
        /// The body to send when it is not the plan's (local files replaced by their uploads'
        /// URLs): a resend under the same key sends exactly this.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<String>,
        /// When `body` stops being sendable (RFC 3339): its uploads' URLs are about to expire, and
        /// a create naming an expired upload is refused. Never re-sent after this.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        send_until: Option<String>,
        at: String,
    },
    /// The service made (or replayed) the task.
    Submitted {
        job: String,
        attempt: u32,
        task_id: String,
        at: String,
    },
    /// The service made no task (402 and such): the reservation is released and the job waits.
    Unsubmitted {
        job: String,
        attempt: u32,
        reason: String,
        at: String,
    },
    /// The task finished; `cost` µ¢ were billed.
    Completed {
        job: String,
        task_id: String,
        url: String,
        cost: u64,
        at: String,
    },
    /// The task ended `failed` (not billed): the reservation is released.
    AttemptFailed {
        job: String,
        attempt: u32,
        task_id: String,
        message: String,
        at: String,
    },
    /// The video is on disk, verified.
    Downloaded {
        job: String,
        path: String,
        bytes: u64,
        /// `blake3:<hex>`; journals written before BLAKE3 call it `sha256` and hold bare hex.
        #[serde(alias = "sha256")]
        checksum: String,
        at: String,
    },
    /// The job will not be tried again.
    Failed {
        job: String,
        kind: FailureKind,
        message: String,
        at: String,
    },
    /// The task outlived its deadline; a later run re-attaches to it.
    TimedOut { job: String, task_id: String, at: String },
    /// A multipart upload of the job's video into object storage was begun: recorded before its
    /// first part, so a run killed mid-upload has it aborted on resume (no orphaned parts).
    UploadBegun {
        job: String,
        object: String,
        upload_id: String,
        at: String,
    },
    /// That upload ended: completed (a `downloaded` record follows) or aborted.
    UploadEnded { job: String, upload_id: String, at: String },
}

impl Record {
    pub fn job(&self) -> Option<&str> {
        match self {
            Record::RunStarted { .. } => None,
            Record::Submitting { job, .. }
            | Record::Submitted { job, .. }
            | Record::Unsubmitted { job, .. }
            | Record::Completed { job, .. }
            | Record::AttemptFailed { job, .. }
            | Record::Downloaded { job, .. }
            | Record::Failed { job, .. }
            | Record::TimedOut { job, .. }
            | Record::UploadBegun { job, .. }
            | Record::UploadEnded { job, .. } => Some(job),
        }
    }

    /// The record as one journal line, without the newline.
    pub fn to_line(&self) -> String {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let serde_json::Value::Object(map) = &mut value {
            map.insert("v".into(), VERSION.into());
        }
        value.to_string()
    }
}
