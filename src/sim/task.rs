//! A simulated task: its times on the simulated clock, its outcome and bill, and how the status
//! route shows it at a given moment.

use crate::kling::Endpoint;
use crate::util::money::Money;
use serde::Serialize;
use serde_json::{Value, json};
use std::time::{Duration, SystemTime};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    Completes,
    Fails(&'static str),
}

pub(super) const FAILURE_REASONS: &[&str] = &[
    "Generation failed: the model could not render this prompt",
    "Generation failed: content did not pass moderation",
    "Generation failed: upstream provider error",
];

#[derive(Debug, Clone)]
pub(super) struct Task {
    pub id: String,
    pub endpoint: Endpoint,
    pub model: Option<String>,
    pub created_at: SystemTime,
    /// Simulated times: made at `created`, queued until `started`, done at `ready`.
    pub created: Duration,
    pub started: Duration,
    pub ready: Duration,
    pub outcome: Outcome,
    pub reserved: Money,
    pub charge: Money,
    pub settled_at: Option<SystemTime>,
    pub client_request_id: Option<String>,
    pub(super) body_hash: String,
    /// Status reads of this task, and the simulated time the first one found it finished: what a
    /// benchmark needs for polls per job and how late a client noticed.
    pub polls: u32,
    pub noticed: Option<Duration>,
    /// Status reads of it so far, and those that found it completed: the eventual-consistency
    /// faults hide the first few of each.
    pub reads: u32,
    pub completed_reads: u32,
    /// The bytes of its video: an extension's is its source's and one clip more.
    pub video_len: u64,
    /// The task a continuation continues (checked completed when it was created).
    pub source_task_id: Option<String>,
}

/// One task's timing as `GET /__sim/tasks` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct TaskTiming {
    pub id: String,
    pub created_unix_ms: u64,
    /// From creation to the moment it finished, in simulated seconds.
    pub generation_seconds: f64,
    /// Status reads of it, from any client.
    pub polls: u32,
    /// From finishing to the first status read that said so; `None` if nobody has seen it.
    pub noticed_after_seconds: Option<f64>,
    /// The `X-Client-Request-Id` it was created with (kling-batch sends the job id).
    pub client_request_id: Option<String>,
    /// The task a continuation continues.
    pub source_task_id: Option<String>,
    /// Bytes of its video.
    pub video_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Status {
    Pending,
    Processing,
    Completed,
    Failed,
}

impl Status {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Processing => "processing",
            Status::Completed => "completed",
            Status::Failed => "failed",
        }
    }
}

impl Task {
    /// A stand-in for a task an earlier simulator made: no request was ever seen for it.
    pub(super) fn adopted(&self) -> bool {
        self.body_hash.is_empty()
    }

    pub(super) fn status(&self, now: Duration) -> Status {
        if now < self.started {
            Status::Pending
        } else if now < self.ready {
            Status::Processing
        } else {
            match self.outcome {
                Outcome::Completes => Status::Completed,
                Outcome::Fails(_) => Status::Failed,
            }
        }
    }

    /// The task as `GET /api/v1/kling/{action}/{id}` shows it; `video_url` for a completed task.
    pub(super) fn view(&self, now: Duration, video_url: Option<String>) -> Value {
        let status = self.status(now);
        let mut body = json!({
            "id": self.id,
            "task_id": self.id,
            "status": status.as_str(),
            "model": self.model,
            "created_at": crate::util::time_format::rfc3339(self.created_at),
            "billing": { "reservation": { "amount_cents": cents_up(self.reserved) } },
        });
        match (status, self.outcome) {
            // A task an earlier simulator made (`adopt_unknown_tasks`): this one never saw its
            // request, so it cannot say what it cost; the client counts what it reserved.
            (Status::Completed, _) if self.adopted() => {
                body["videos"] = json!([{ "url": video_url }]);
            }
            (Status::Completed, _) => {
                body["videos"] = json!([{ "url": video_url }]);
                body["billing"]["settlement"] = json!({
                    "charged_amount_cents": cents_up(self.charge),
                    "amount_micro_cents": self.charge.micro_cents(),
                });
                body["usage"] = json!({ "cost": self.charge.usd() });
            }
            (Status::Failed, Outcome::Fails(reason)) => {
                body["error"] = json!(reason);
                let refunded = self.settled_at.unwrap_or(self.created_at);
                body["billing"]["refund"] = json!({ "refunded_at": crate::util::time_format::rfc3339(refunded) });
            }
            _ => {}
        }
        body
    }
}

fn cents_up(m: Money) -> u64 {
    m.micro_cents().div_ceil(1_000_000)
}
