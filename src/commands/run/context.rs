//! What both run paths — a run of its own (`command`) and a worker of a shared sweep (`sweep`) —
//! build on: the failure of a run that cannot start, a new run id, and the executor's context.

use super::request::Request;
use super::settings::Settled;
use crate::client::RunApi;
use crate::error::{CommandFailure, Exit};
use crate::output::videos::VideoStore;
use crate::runner::{CapRule, Context, Settings, SharedSettings};
use crate::store::RunStore;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

pub(super) fn fail(message: impl std::fmt::Display, hint: &str, exit: Exit) -> CommandFailure {
    CommandFailure::new(exit, message).hint(hint)
}

pub(super) fn new_run_id() -> String {
    let seed = format!("{:?}:{}", std::time::SystemTime::now(), std::process::id());
    crate::util::hex::hex(&Sha256::digest(seed.as_bytes())[..6])
}

/// What the executor works with: the plan, the API, a credential-free client for videos, where
/// records and videos go, and (for a worker of a shared sweep) its claims and heartbeats.
pub(super) fn run_context(
    request: &Request,
    plan: &Arc<crate::plan::Plan>,
    api: &Arc<RunApi>,
    journal: Arc<dyn RunStore>,
    videos: Arc<dyn VideoStore>,
    shared: Option<Arc<crate::runner::sweep::SharedSweep>>,
) -> Result<Context, CommandFailure> {
    let downloads = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::limited(5))
        .build()
        .map_err(|e| fail(format!("cannot build the HTTP client: {e}"), "", Exit::Failure))?;
    Ok(Context {
        plan: Arc::clone(plan),
        api: Arc::clone(api),
        downloads,
        journal,
        videos,
        uploads: Arc::new(crate::client::uploads::UploadCache::default()),
        fetch: request.fetch,
        grace: request.grace,
        max_runtime: request.max_runtime,
        refresh: Duration::from_secs(2),
        shared,
    })
}

/// The dispatcher's settings for a run (or a shared sweep's worker, with `shared`), from the
/// settled ones: made in one place for both run paths.
pub(super) fn dispatcher_settings(
    request: &Request,
    settled: &Settled,
    run_id: String,
    cap: CapRule,
    shared: Option<SharedSettings>,
) -> Settings {
    let concurrency = settled.concurrency as usize;
    Settings {
        run_id,
        concurrency,
        max_attempts: settled.max_attempts,
        retry_failed: request.retry_failed.clone(),
        cap,
        task_deadline: request.task_deadline,
        // The schedule learns the service's speed; a `--time-scale` given is a hint to start from.
        time_hint: request.service.time_scale,
        rate: settled.rate,
        downloads_at_once: concurrency.clamp(2, 16),
        seed: u64::from(std::process::id()),
        shared,
    }
}
