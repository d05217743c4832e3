//! Runs the dispatcher's operations concurrently — every submit, poll and download is a future
//! in one `FuturesUnordered` — and hands each result back. The `select!` here only gathers events
//! (an operation finished, a timer fired, a signal arrived) and never decides anything; it never
//! awaits something an operation could be holding.

use super::dispatcher::Dispatcher;
use super::job::{Event, Op};
use crate::client::RunApi;
use crate::output::videos::{FetchLimits, OpenUpload, VideoStore};
use crate::plan::Plan;
use crate::store::{Fence, RunStore};
use futures::future::{AbortHandle, BoxFuture};
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct Context {
    pub plan: Arc<Plan>,
    pub api: Arc<RunApi>,
    /// A client without credentials, for video downloads.
    pub downloads: reqwest::Client,
    /// Where records go (the local journal today).
    pub journal: Arc<dyn RunStore>,
    /// Where videos go (the output folder's `videos/` today).
    pub videos: Arc<dyn VideoStore>,
    /// Local input files uploaded in this run, by content.
    pub uploads: Arc<crate::client::uploads::UploadCache>,
    pub fetch: FetchLimits,
    /// How long in-flight work may continue after a first Ctrl-C.
    pub grace: Duration,
    /// Stop submitting after this long.
    pub max_runtime: Option<Duration>,
    /// How often `on_refresh` is called (results.csv, progress).
    pub refresh: Duration,
    /// A worker of a shared sweep (`--state`): its claims and heartbeats.
    pub shared: Option<Arc<super::sweep::SharedSweep>>,
}

/// Starts `op`; `fence` is the claim its job is held under, stamped now (a shared sweep's store
/// refuses what it writes if another worker claimed the job since).
fn start(op: Op, fence: Option<Fence>, ctx: &Context) -> BoxFuture<'static, Event> {
    let ctx = ctx.clone();
    match op {
        Op::Prepare { job, request } => async move {
            let request = request.as_deref().unwrap_or(ctx.plan.jobs[job].request.as_str());
            let result = ctx
                .uploads
                .body_for(&ctx.api, &ctx.downloads, &ctx.plan.inputs, request)
                .await;
            Event::Prepared { job, result }
        }
        .boxed(),
        Op::Submit {
            job,
            key,
            intent,
            body,
            send_until,
        } => async move {
            if let Some(intent) = intent
                && let Err(error) = ctx.journal.append_durable(&intent, fence).await
            {
                return Event::JournalFailed { job, error };
            }
            crate::util::crash::point("submit.after_intent");
            let spec = &ctx.plan.jobs[job];
            let text = body.as_deref().unwrap_or(spec.request.as_str());
            let result = ctx
                .api
                .create(spec.endpoint, text, &key, spec.id.as_str(), send_until)
                .await;
            crate::util::crash::point("submit.after_post");
            Event::Submitted { job, result }
        }
        .boxed(),
        Op::Poll { job, task_id } => async move {
            let endpoint = ctx.plan.jobs[job].endpoint;
            Event::Polled {
                job,
                result: ctx.api.get(endpoint, &task_id).await,
            }
        }
        .boxed(),
        Op::Claim { n } => async move {
            let result = match &ctx.shared {
                Some(shared) => shared.claim(n).await,
                None => Err("not a shared sweep".into()),
            };
            if let Ok(claimed) = &result {
                // Uploads a dead worker left open on the jobs taken over: aborted before anything
                // of them is fetched again.
                let mut facts: std::collections::HashMap<&str, crate::journal::JobFacts> = Default::default();
                for record in &claimed.records {
                    if let Some(job) = record.job() {
                        facts.entry(job).or_default().apply(record);
                    }
                }
                let open: Vec<OpenUpload> = claimed
                    .jobs
                    .iter()
                    .zip(&claimed.fences)
                    .filter_map(|(&i, &fence)| facts.get(ctx.plan.jobs[i].id.as_str()).map(|f| (i, fence, f)))
                    .flat_map(|(i, fence, f)| {
                        let id = ctx.plan.jobs[i].id.to_string();
                        f.open_uploads().iter().map(move |(o, u)| OpenUpload {
                            job: id.clone(),
                            object: o.clone(),
                            upload_id: u.clone(),
                            fence: Some(fence),
                        })
                    })
                    .collect();
                if !open.is_empty() {
                    ctx.videos.abort_open(open).await;
                }
            }
            Event::Claimed { result }
        }
        .boxed(),
        Op::Heartbeat { in_flight, done } => async move {
            let result = match &ctx.shared {
                Some(shared) => shared.heartbeat(in_flight, &done).await,
                None => Err("not a shared sweep".into()),
            };
            Event::Heartbeat { result }
        }
        .boxed(),
        Op::Download { job, url } => async move {
            // Writing, hashing and fsyncing happen on a blocking thread inside `download`.
            let id = ctx.plan.jobs[job].id.as_str();
            let result = ctx.videos.fetch(&ctx.downloads, &url, id, fence, ctx.fetch).await;
            Event::Downloaded { job, result }
        }
        .boxed(),
    }
}

/// Runs until the dispatcher is idle or abandons the run. `signals` carries Ctrl-C presses
/// (1, 2, …); `on_refresh` is called at intervals and once at the end.
pub async fn execute(
    dispatcher: &mut Dispatcher,
    ctx: &Context,
    signals: &mut mpsc::UnboundedReceiver<u8>,
    mut on_refresh: impl FnMut(&Dispatcher),
) {
    let mut ops: FuturesUnordered<BoxFuture<'static, Event>> = FuturesUnordered::new();
    // Each job's operation in flight can be dropped at once when its claim is lost.
    let mut handles: HashMap<usize, AbortHandle> = HashMap::new();
    let started = Instant::now();
    let mut grace_deadline: Option<Instant> = None;
    let runtime_deadline = ctx.max_runtime.map(|d| started + d);
    let mut refresh = tokio::time::interval(ctx.refresh);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut signals_open = true;
    loop {
        for (record, fence) in dispatcher.take_stamped() {
            ctx.journal.append(&record, fence);
        }
        for job in dispatcher.take_cancelled() {
            if let Some(handle) = handles.remove(&job) {
                handle.abort();
            }
        }
        if let Some(deadline) = runtime_deadline
            && Instant::now() >= deadline
            && dispatcher.stop_reason().is_none()
        {
            // `--max-runtime`: submit nothing more; what is in flight has `--grace` to finish.
            dispatcher.stop_for_runtime();
            grace_deadline.get_or_insert(Instant::now() + ctx.grace);
        }
        for op in dispatcher.ready_ops(Instant::now()) {
            match op.job() {
                Some(job) => {
                    let fence = dispatcher.fence_of(job);
                    let (future, handle) = futures::future::abortable(start(op, fence, ctx));
                    handles.insert(job, handle);
                    ops.push(future.map(move |r| r.unwrap_or(Event::Cancelled { job })).boxed());
                }
                None => ops.push(start(op, None, ctx)),
            }
        }
        for (record, fence) in dispatcher.take_stamped() {
            ctx.journal.append(&record, fence);
        }
        if dispatcher.abandoned() || (dispatcher.idle() && ops.is_empty()) {
            break;
        }
        let wake = dispatcher.next_wakeup();
        tokio::select! {
            level = signals.recv(), if signals_open => match level {
                Some(level) => {
                    dispatcher.interrupt(level);
                    grace_deadline.get_or_insert(Instant::now() + ctx.grace);
                }
                None => signals_open = false,
            },
            Some(event) = ops.next(), if !ops.is_empty() => {
                if let Some(job) = event.job() {
                    handles.remove(&job);
                }
                dispatcher.handle(event, Instant::now());
            }
            _ = tokio::time::sleep_until(wake.unwrap_or_else(Instant::now)), if wake.is_some() => {}
            _ = tokio::time::sleep_until(grace_deadline.unwrap_or_else(Instant::now)), if grace_deadline.is_some() => {
                // The journal holds every task id and key: what is left is resumable.
                dispatcher.abandon_in_flight();
            }
            _ = tokio::time::sleep_until(runtime_deadline.unwrap_or_else(Instant::now)), if runtime_deadline.is_some() && dispatcher.stop_reason().is_none() => {}
            _ = refresh.tick() => on_refresh(dispatcher),
        }
    }
    for (record, fence) in dispatcher.take_stamped() {
        ctx.journal.append(&record, fence);
    }
    on_refresh(dispatcher);
}
