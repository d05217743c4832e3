//! `run --state postgres://…`: this process is one worker of a sweep whose state lives in
//! PostgreSQL. It claims jobs, works them like any run (the same dispatcher and executor; records
//! go to the database, an intent committed — and checked against the sweep's cap — before its
//! POST), renews its leases, and ends when the sweep has nothing left (or it is stopped). The
//! output folder is shared: each worker writes its own jobs' videos, and at its end results.csv,
//! report.html and summary.json for the whole sweep, from the database.

use super::context::{fail, new_run_id};
use super::finish::confirm;
use super::quotes::quote_reservations;
use super::resume::{ResumeSettings, resume_command};
use super::settings::Cap;
use super::spend::balance_covers;
use crate::cli::RunArgs;
use crate::client::{Pacer, RunApi};
use crate::commands::state::failure;
use crate::error::{CommandFailure, Exit};
use crate::journal::{FailureKind, Record, Replayed};
use crate::output::folder::{OutDir, REPORT, RESULTS};
use crate::output::videos::{LocalVideos, VideoStore};
use crate::plan::Plan;
use crate::report::RunStatus;
use crate::runner::sweep::SharedSweep;
use crate::runner::{Dispatcher, JobPhase, JobRun, SharedSettings, execute};
use crate::sim::SimHandle;
use crate::store::RunStore;
use crate::store::postgres::{CapChange, Conn, PgRunStore, Sweep};
use crate::util::money::Money;
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

pub(super) struct SharedStart<'a> {
    pub(super) args: &'a RunArgs,
    pub(super) given_out: &'a Path,
    pub(super) url: String,
    pub(super) client: tokio_postgres::Client,
    pub(super) sweep: Sweep,
    pub(super) plan: Arc<Plan>,
    /// The shared output folder, or none when the output is a bucket.
    pub(super) out: Option<OutDir>,
    pub(super) bucket: Option<crate::output::bucket::Bucket>,
    pub(super) api: Arc<RunApi>,
    pub(super) pacer: Arc<Pacer>,
    pub(super) cap_choice: Cap,
    pub(super) rate: f64,
    pub(super) concurrency: u32,
    pub(super) max_attempts: u32,
    pub(super) resume_settings: ResumeSettings,
    pub(super) simulator: Option<SimHandle>,
    pub(super) started: Instant,
    pub(super) quiet: bool,
}

/// The failed jobs a worker started with `--retry-failed[=PATTERN]` (or a raised
/// `--max-attempts`) gives back to the sweep: the dispatcher's own rule.
fn to_reopen(plan: &Plan, history: &Replayed, args: &RunArgs, max_attempts: u32) -> Vec<usize> {
    plan.jobs
        .iter()
        .enumerate()
        .filter(|(_, job)| {
            let Some(facts) = history.jobs.get(job.id.as_str()) else {
                return false;
            };
            let Some(failure) = facts.failure.as_ref() else {
                return false;
            };
            let asked = args
                .retry_failed
                .as_ref()
                .is_some_and(|p| failure.to_string().to_lowercase().contains(&p.to_lowercase()));
            let more = failure.kind == FailureKind::TaskFailed && facts.task_failures() < max_attempts;
            asked || more
        })
        .map(|(i, _)| i)
        .collect()
}

fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Jobs as the whole sweep's records show them (the facts moved, not copied).
fn at_rest(plan: &Plan, mut history: Replayed, videos: &dyn VideoStore) -> Vec<JobRun> {
    let mut jobs: Vec<JobRun> = plan
        .jobs
        .iter()
        .map(|j| {
            let facts = history.jobs.remove(j.id.as_str());
            let ok = facts
                .as_ref()
                .and_then(|f| f.video.as_ref())
                .is_some_and(|v| videos.present(v));
            match facts {
                Some(f) => {
                    let state = f.state(ok);
                    JobRun::new(f, state)
                }
                None => JobRun::queued(),
            }
        })
        .collect();
    crate::runner::standing::settle_at_rest(plan, &mut jobs);
    jobs
}

pub(super) async fn run_shared(s: SharedStart<'_>, stderr: &mut dyn Write) -> Result<Exit, CommandFailure> {
    let SharedStart {
        args,
        given_out,
        url,
        client,
        sweep,
        plan,
        out,
        bucket,
        api,
        pacer,
        cap_choice,
        rate,
        concurrency,
        max_attempts,
        resume_settings,
        simulator,
        started,
        quiet,
    } = s;
    let mut client = client;
    let history = sweep.replay(&client).await.map_err(failure)?;
    // A failed job given back is placed as a resume places it once claimed: retried by the
    // dispatcher's own rule (the same flags).
    let worker = format!("{}-{}-{}", host_name(), std::process::id(), &new_run_id()[..6]);
    let writer_client = crate::commands::state::connect(&url).await?;
    let index: HashMap<String, i32> = plan
        .jobs
        .iter()
        .enumerate()
        .map(|(i, j)| (j.id.to_string(), i32::try_from(i).unwrap_or(i32::MAX)))
        .collect();
    let store = Arc::new(PgRunStore::start(
        Conn::new(&url, writer_client),
        sweep.id,
        worker.clone(),
        history.jobs.clone(),
        index,
        args.state_outage,
    ));
    let videos: Arc<dyn VideoStore> = match (&bucket, &out) {
        (Some(bucket), _) => {
            let journal: Arc<dyn RunStore> = store.clone();
            Arc::new(
                crate::output::bucket_videos::BucketVideos::open(bucket.clone(), journal)
                    .await
                    .map_err(super::bucket::failure)?,
            )
        }
        (None, Some(out)) => Arc::new(LocalVideos::new(out.root())),
        (None, None) => return Err(fail("no place for the videos", "", Exit::Failure)),
    };
    let documents = super::bucket::Documents {
        out: out.as_ref(),
        bucket: bucket.as_ref(),
    };
    let reservations = quote_reservations(&api, &plan, &history, stderr).await;
    let estimates = reservations.clone();
    let settings = super::context::dispatcher_settings(
        args,
        sweep.run_id.clone(),
        (concurrency, rate, max_attempts),
        cap_choice.amount(),
        Some(SharedSettings { lease: args.lease }),
    );
    let files_ok = vec![false; plan.jobs.len()];
    let mut dispatcher = Dispatcher::new(
        Arc::clone(&plan),
        reservations,
        &history,
        &files_ok,
        settings,
        tokio::time::Instant::now(),
    );
    // What is left to submit in the whole sweep (without making every job's run state: a
    // 100,000-job sweep's would be tens of megabytes).
    let to_submit: Vec<bool> = plan
        .jobs
        .iter()
        .map(|j| {
            history
                .jobs
                .get(j.id.as_str())
                .is_none_or(|h| h.state(false) == crate::journal::JobState::Queued)
        })
        .collect();
    let to_spend: Money = to_submit
        .iter()
        .zip(&estimates)
        .filter(|(left, _)| **left)
        .map(|(_, m)| *m)
        .sum();
    // The sweep has one cap. A worker asking for none keeps it; a lower one lowers it for all; a
    // higher one (or none at all) is refused unless --raise-cap says so. Settled before anything
    // of this worker changes the sweep.
    let estimate = history.spent.saturating_add(history.reserved).saturating_add(to_spend);
    let fallback = match cap_choice {
        Cap::Default => Some(estimate),
        other => other.amount(),
    };
    let asked = args.max_spend.is_some().then(|| cap_choice.amount());
    let change = sweep
        .settle_cap(&mut client, asked, fallback, args.raise_cap)
        .await
        .map_err(failure)?;
    let show = |c: Option<Money>| c.map_or_else(|| "no cap".to_string(), |c| c.to_string());
    match change {
        CapChange::Refused { current, asked } => {
            return Err(CommandFailure::new(
                Exit::Usage,
                format!(
                    "sweep `{}` has a spend cap of {}; --max-spend {} would raise it for every worker",
                    sweep.name,
                    show(current),
                    asked.map_or_else(|| "none".to_string(), |c| format!("{:.2}", c.usd()))
                ),
            )
            .hint("add --raise-cap to raise the sweep's cap on purpose, or leave out --max-spend to keep it; nothing was spent"));
        }
        CapChange::Set(Some(cap)) if cap_choice == Cap::Default => {
            let _ = writeln!(
                stderr,
                "capped at the estimate, {cap}: the sweep spends no more than that (--max-spend USD to change it, --max-spend none to lift it)"
            );
        }
        CapChange::Set(_) => {}
        CapChange::Unchanged(cap) => {
            let _ = writeln!(stderr, "the sweep's spend cap: {}", show(cap));
        }
        CapChange::Lowered { from, to } => {
            let _ = writeln!(
                stderr,
                "lowered the sweep's spend cap from {} to {}: every worker keeps to it",
                show(from),
                show(to)
            );
        }
        CapChange::Raised { from, to } => {
            let _ = writeln!(
                stderr,
                "raised the sweep's spend cap from {} to {} (--raise-cap): every worker keeps to it",
                show(from),
                show(to)
            );
        }
    }
    dispatcher.set_cap(change.cap());
    let reopen = to_reopen(&plan, &history, args, max_attempts);
    let reopened = sweep.reopen(&client, &reopen).await.map_err(failure)?;
    if reopened > 0 {
        let _ = writeln!(stderr, "gave {reopened} failed (or skipped) job(s) back to the sweep");
    }
    // Paid jobs recorded as finished whose video is not in the store: fetching it is work for
    // the next claim (what `status` says a resume does).
    let missing: Vec<usize> = plan
        .jobs
        .iter()
        .enumerate()
        .filter(|(_, j)| {
            history
                .jobs
                .get(j.id.as_str())
                .and_then(|h| h.video.as_ref())
                .is_some_and(|v| !videos.present(v))
        })
        .map(|(i, _)| i)
        .collect();
    let given_back = sweep.reopen_missing(&client, &missing).await.map_err(failure)?;
    if given_back > 0 {
        let _ = writeln!(
            stderr,
            "{given_back} paid video(s) recorded as stored are not in place: they are fetched again"
        );
    }
    let recorded = resume_settings.to_recorded();
    sweep.record_limits(&client, rate, &recorded).await.map_err(failure)?;
    store.append(
        &Record::RunStarted {
            run_id: sweep.run_id.clone(),
            at: crate::util::time_format::now(),
            manifest: Some(args.manifest.display().to_string()),
            cap: dispatcher.ledger().cap().map(Money::micro_cents),
            settings: Some(recorded),
        },
        None,
    );
    if let Some(exit) = balance_covers(&api, args, &dispatcher, &estimates, to_spend, stderr).await {
        return Ok(exit);
    }
    let queued = to_submit.iter().filter(|left| **left).count();
    // The dispatcher holds what it needs: a 100,000-job sweep's replay is not kept through the run.
    drop(to_submit);
    drop(history);
    if !confirm(args, to_spend, queued, stderr) {
        let _ = writeln!(stderr, "cancelled: nothing was submitted");
        return Ok(Exit::Interrupted);
    }
    sweep.join(&client, &worker, &host_name()).await.map_err(failure)?;
    let shared = Arc::new(SharedSweep {
        sweep: sweep.clone(),
        worker: worker.clone(),
        lease: args.lease,
        rate,
        conn: tokio::sync::Mutex::new(Conn::new(&url, client)),
        store: Arc::clone(&store),
        pacer: Arc::clone(&pacer),
    });
    // A 429 this worker meets pauses the others too.
    let weak = Arc::downgrade(&shared);
    pacer.set_pause_hook(Box::new(move |wait| {
        if let Some(shared) = weak.upgrade() {
            tokio::spawn(async move { shared.pause(wait).await });
        }
    }));
    let ctx = super::context::run_context(
        args,
        &plan,
        &api,
        store.clone(),
        Arc::clone(&videos),
        Some(Arc::clone(&shared)),
    )?;
    let _ = writeln!(stderr, "worker {worker} of sweep `{}`", sweep.name);
    let mut signals = crate::runner::signals::listen();
    let mut progress = crate::report::Progress::new(plan.jobs.len(), 0, quiet);
    execute(&mut dispatcher, &ctx, &mut signals, |d| {
        progress.update(&super::finish::snapshot(d), false);
    })
    .await;
    progress.finish();
    drop(ctx);
    let journal_result = store.close().await;
    // What this worker did, taken before its run state is let go (the whole sweep's view below is
    // as large again).
    let stop = dispatcher.stop_reason().cloned();
    let stop_exit = stop
        .as_ref()
        .filter(|s| **s != crate::runner::StopReason::MaxRuntime)
        .map(|s| super::finish::exit_code(Some(s), dispatcher.jobs()));
    let mine = dispatcher
        .jobs()
        .iter()
        .filter(|j| j.phase() == JobPhase::Done && j.facts.submitted_at.is_some())
        .count();
    let mine_spent = dispatcher.ledger().spent();
    let lost = dispatcher.jobs_lost();
    drop(dispatcher);
    drop(store);
    // Whatever this worker still holds goes back to the sweep at once.
    {
        let mut conn = shared.conn.lock().await;
        if let Ok(client) = conn.get().await
            && let Err(e) = sweep.leave(client, &worker).await
        {
            let _ = writeln!(stderr, "warning: could not give this worker's jobs back: {e}");
        }
    }
    // The whole sweep as the database has it: results.csv, report.html, summary.json (the store
    // looked at again: other workers' videos are there too).
    videos.refresh().await;
    let whole = {
        let mut conn = shared.conn.lock().await;
        match conn.get().await {
            Ok(client) => sweep.replay(client).await.ok(),
            Err(_) => None,
        }
    };
    let Some(history) = whole else {
        let _ = writeln!(
            stderr,
            "the state database could not be read at the end: results.csv and report.html were not rewritten (`kling-batch report --state …` writes them)"
        );
        if let Some(handle) = simulator {
            handle.stop().await;
        }
        return Ok(stop_exit.unwrap_or(Exit::TimedOut));
    };
    let status = RunStatus::of_journal(&history, Some(&plan), &|id| {
        history
            .jobs
            .get(id)
            .and_then(|h| h.video.as_ref())
            .is_some_and(|v| videos.present(v))
    });
    let removed = crate::report::removed_paid(&plan, &history);
    let jobs = at_rest(&plan, history, videos.as_ref());
    documents
        .write_with(
            RESULTS,
            |w| crate::report::write_results_csv(&plan, &jobs, &removed, w),
            stderr,
        )
        .await;
    let axes = crate::report::Axes::default_for(&plan);
    documents
        .write_with(
            REPORT,
            |w| crate::report::write_gallery(&plan, &jobs, &removed, &axes, &status, w),
            stderr,
        )
        .await;
    let exit = stop_exit.unwrap_or_else(|| super::finish::exit_code(None, &jobs));
    let text = super::finish::summary_json(&status, exit, stop.as_ref(), started.elapsed(), Some(&sweep.name));
    documents
        .write_with("summary.json", |w| w.write_all(text.as_bytes()), stderr)
        .await;
    let _ = writeln!(
        stderr,
        "this worker: {mine} job(s) completed, {mine_spent} spent, in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if let Some(stop) = &stop {
        // Why this worker ended as it did, whatever the sweep's state.
        let why = match stop {
            crate::runner::StopReason::CapReached { .. } => "stopped at the sweep's spend cap".to_string(),
            crate::runner::StopReason::Credits(m) => format!("stopped: the account is out of credits ({m})"),
            crate::runner::StopReason::Auth(m) => format!("stopped: the API key was refused ({m})"),
            crate::runner::StopReason::Interrupted => "interrupted; what it did is saved".to_string(),
            crate::runner::StopReason::MaxRuntime => "stopped submitting at --max-runtime".to_string(),
            crate::runner::StopReason::Local(m) => format!("stopped: {m}"),
        };
        let _ = writeln!(stderr, "this worker {why}");
    }
    if lost > 0 {
        let _ = writeln!(
            stderr,
            "this worker: {lost} job(s) taken over by other workers after its lease ran out (it was paused or cut off from the database); its work on them stopped, and nothing it did after that was recorded"
        );
    }
    let _ = write!(stderr, "the sweep: {}", status.render(&sweep.name));
    if !status.finished {
        let _ = writeln!(
            stderr,
            "resume (or add workers) with: {}{}",
            resume_command(given_out, &args.out, &resume_settings),
            if args.state.is_some() {
                ""
            } else {
                " (with the same KLING_BATCH_STATE)"
            },
        );
    }
    if let Some(handle) = simulator {
        handle.stop().await;
    }
    if let Err(e) = journal_result {
        return Err(fail(&e, "a rerun resumes from what the database holds", Exit::Failure));
    }
    Ok(exit)
}
