//! `kling-batch run`, as a list of steps: the flags checked and the output's place settled
//! (`request`), the service, the plan, where the run's state lives (the output folder's journal,
//! or a shared sweep in PostgreSQL — the one store-specific step, `origin`), the settings settled
//! once, the checks before anything is written, the store opened with its replay, the dispatcher,
//! the run, and what is written and said at its end. Everything a rerun needs is in the run's
//! state, so running the same command again resumes.

use super::context::{fail, run_context};
use super::finish::{confirm, snapshot};
use super::origin::{Opened, Origin};
use super::quotes::quote_reservations;
use super::request::Request;
use super::resume::ResumeSettings;
use super::service::Connection;
use super::settings::Cap;
use super::spend::balance_covers;
use crate::cli::RunArgs;
use crate::client::{Pacer, RunApi};
use crate::commands::load::load_plan_within;
use crate::error::{CommandFailure, Exit};
use crate::journal::{self, Record};
use crate::output::folder::{JOURNAL, RESULTS};
use crate::report::write_results_csv;
use crate::runner::{CapRule, Dispatcher, JobPhase, execute};
use crate::util::money::Money;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) fn run(
    args: RunArgs,
    quiet: bool,
    log_file: Option<&std::path::Path>,
    stderr: &mut dyn Write,
) -> Result<Exit, CommandFailure> {
    // One thread runs the whole run (the dispatcher, every HTTP exchange); file writes, hashing
    // and fsyncs go to the blocking pool. Measured on scenario 1 of BENCHMARKS.md: a third less
    // user CPU than the multi-threaded runtime, whose workers mostly woke each other.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return Err(fail(format!("cannot start the async runtime: {e}"), "", Exit::Failure)),
    };
    let request = Request::new(args)?;
    runtime.block_on(run_async(request, quiet, log_file, stderr))
}

async fn run_async(
    request: Request,
    quiet: bool,
    log_file: Option<&std::path::Path>,
    stderr: &mut dyn Write,
) -> Result<Exit, CommandFailure> {
    let started = Instant::now();
    // A run of its own finds what its folder's last run recorded (a resume keeps its cap, pace,
    // service); a shared sweep's are with the sweep.
    let last_run = match request.place.database {
        Some(_) => None,
        None => journal::last_run_started(&request.place.out.join(JOURNAL)),
    };
    let recorded = last_run.as_ref().and_then(|r| r.settings.clone()).unwrap_or_default();
    let (service, note) = request.service.settle(&request.flags, &recorded);
    if let Some(note) = note {
        let _ = writeln!(stderr, "{note}");
    }
    // The key first: without one nothing else matters.
    let connection = Connection::open(&service).await?;
    let within = request.approved.as_ref().map(|a| &a.within);
    let mut plan = match load_plan_within(&request.manifest, request.max_input_bytes, within) {
        Ok(plan) => plan,
        Err(e) => return Err(crate::error::CommandError::Manifest(e).into()),
    };
    // A run started on someone's approval runs that plan or nothing: a manifest or a file it
    // names changed since (or swapped as the run started) is refused before anything is written.
    if let Some(approved) = &request.approved
        && plan.content_digest() != approved.digest
    {
        return Err(fail(
            "the plan differs from the one approved: the manifest or a file it names changed since it was planned",
            "plan the sweep again and have the new plan approved; nothing was written or sent",
            Exit::Invalid,
        ));
    }
    tracing::debug!(
        jobs = plan.jobs.len(),
        seconds = started.elapsed().as_secs_f64(),
        "planned"
    );
    let origin = Origin::find(&request, last_run, &plan, stderr).await?;
    let settled = request
        .flags
        .settle(service, origin.recorded_settings(), origin.recorded_cap(), &plan.limits);
    for note in &settled.notes {
        let _ = writeln!(stderr, "{note}");
    }
    if request.refresh_expired_uploads {
        let _ = writeln!(
            stderr,
            "note: --refresh-expired-uploads is no longer needed and changes nothing: a create of unknown outcome is re-sent byte for byte under its own key, which the service answers with the task the first send made"
        );
    }
    let resume = ResumeSettings::of(&settled, &request.place, &connection.base_url);
    let pacer = Arc::new(Pacer::new(settled.rate));
    let api = match RunApi::new(
        connection.credentials.clone(),
        Arc::clone(&pacer),
        request.request_timeout,
    ) {
        Ok(a) => Arc::new(a),
        Err(e) => return Err(fail(format!("cannot build the HTTP client: {e}"), "", Exit::Failure)),
    };
    // Everything that can refuse the run does so before anything is written or created.
    origin.check(&request, &settled, &plan, log_file)?;
    super::service::check_key(&api).await?;
    let bucket = match &request.place.bucket {
        Some(url) => Some(super::bucket::probe(url).await?),
        None => None,
    };
    connection.announce(stderr);

    let mut opened = origin.open(&request, &settled, &mut plan, bucket, stderr).await?;
    // (The plan is settled: steps with `only:` were chosen when the run's state was opened.)
    let plan = Arc::new(plan);
    tracing::debug!(seconds = started.elapsed().as_secs_f64(), "state opened");
    let reservations = quote_reservations(&api, &plan, &opened.history, stderr).await;
    tracing::debug!(seconds = started.elapsed().as_secs_f64(), "prices quoted");
    let cap = match opened.sweep.as_mut() {
        // A run of its own without a cap spends no more than the estimate it shows.
        None if settled.cap == Cap::Default => CapRule::AtEstimate,
        None => CapRule::Fixed(settled.cap.amount()),
        Some(sweep) => CapRule::Fixed(
            sweep
                .settle_cap(&request, &settled, &plan, &opened.history, &reservations, stderr)
                .await?,
        ),
    };
    let settings = super::context::dispatcher_settings(
        &request,
        &settled,
        opened.run_id.clone(),
        cap,
        opened.sweep.as_ref().map(|_| crate::runner::SharedSettings {
            lease: request.lease,
            outage: request.state_outage,
        }),
    );
    let dispatcher = Dispatcher::new(
        Arc::clone(&plan),
        reservations.clone(),
        &opened.history,
        &opened.files_ok,
        settings,
        tokio::time::Instant::now(),
    );
    if cap == CapRule::AtEstimate
        && let Some(estimate) = dispatcher.ledger().cap()
    {
        let _ = writeln!(
            stderr,
            "capped at the estimate, {estimate}: the run spends no more than that (--max-spend USD to change it, --max-spend none to lift it)"
        );
    }
    // What this process would submit: its own jobs, or what the whole sweep has left.
    let (to_spend, to_submit) = match &opened.sweep {
        None => (
            dispatcher.to_submit(),
            dispatcher
                .jobs()
                .iter()
                .filter(|j| j.phase() == JobPhase::Queued)
                .count(),
        ),
        Some(sweep) => sweep.left(),
    };
    if let Some(sweep) = opened.sweep.as_mut() {
        sweep
            .prepare(
                &request,
                &settled,
                &resume,
                &plan,
                &opened.history,
                opened.videos.as_ref(),
                stderr,
            )
            .await?;
    }
    // Ctrl-C from here on is a graceful stop (a press before the dispatcher starts waits for it).
    let mut signals = crate::runner::signals::listen();
    opened.store.append(
        &Record::RunStarted {
            run_id: opened.run_id.clone(),
            at: crate::util::time_format::now(),
            manifest: Some(request.manifest.display().to_string()),
            cap: dispatcher.ledger().cap().map(Money::micro_cents),
            settings: Some(resume.to_recorded()),
        },
        None,
    );
    if let Some(exit) = balance_covers(&api, request.consent.yes, &dispatcher, &reservations, to_spend, stderr).await {
        return Ok(exit);
    }
    if !confirm(request.consent, settled.service.simulate, to_spend, to_submit, stderr) {
        let _ = writeln!(stderr, "cancelled: nothing was submitted");
        return Ok(Exit::Interrupted);
    }
    // The dispatcher holds what it needs: the replay is not kept through the run (a 100,000-job
    // sweep's is tens of megabytes), but the paid jobs the manifest no longer has stay listed.
    let removed = opened.removed(&plan);
    let history = std::mem::take(&mut opened.history);
    let removed_paid = crate::report::removed_paid(&plan, &history);
    drop(history);
    // What reviewers said of the clips (`kling-batch review`), for results.csv and the gallery.
    let verdicts = match crate::review::verdicts::read_verdicts(&request.place.out) {
        Ok(v) => v,
        Err(e) => {
            let _ = writeln!(stderr, "warning: the reviews are left out of results.csv: {e}");
            None
        }
    };
    let shared = match opened.sweep.as_mut() {
        Some(sweep) => Some(sweep.start(&request, &settled, &pacer, stderr).await?),
        None => None,
    };
    let ctx = run_context(
        &request,
        &plan,
        &api,
        Arc::clone(&opened.store),
        Arc::clone(&opened.videos),
        shared,
    )?;
    tracing::debug!(seconds = started.elapsed().as_secs_f64(), "ready to submit");

    let mut dispatcher = dispatcher;
    let finished_before = match &opened.sweep {
        None => dispatcher.jobs().iter().filter(|j| j.phase().is_terminal()).count(),
        Some(_) => 0,
    };
    let mut progress = crate::report::Progress::new(plan.jobs.len(), finished_before, quiet);
    // A run of its own rewrites results.csv in its folder while it goes, when something changed,
    // and never more than 5 % of the time (a 100,000-row file takes a few hundred milliseconds).
    // The state the run starts from needs no write before the first submit; the first change
    // does. (In object storage, or a shared sweep, it is written once, at the end.)
    let live_results = opened
        .out
        .as_ref()
        .filter(|_| opened.bucket.is_none() && opened.sweep.is_none());
    let mut last_write = Some((snapshot(&dispatcher), Instant::now(), Duration::ZERO));
    execute(&mut dispatcher, &ctx, &mut signals, |d| {
        let now = snapshot(d);
        let due = last_write
            .as_ref()
            .is_none_or(|(seen, at, took)| *seen != now && at.elapsed() >= *took * 20);
        if let Some(out) = live_results.filter(|_| due) {
            let begun = Instant::now();
            let _ = out.write_atomic_with(RESULTS, |w| {
                write_results_csv(&plan, d.jobs(), &removed_paid, verdicts.as_ref(), w)
            });
            last_write = Some((now.clone(), begun, begun.elapsed()));
        }
        progress.update(&now, false);
    })
    .await;
    progress.update(&snapshot(&dispatcher), true);
    progress.finish();
    let uploads = ctx.uploads.counts();
    drop(ctx);
    let closed = opened.store.close().await;
    let ending = super::finish::Ending {
        plan: &plan,
        request: &request,
        resume: &resume,
        reservations: &reservations,
        removed,
        removed_paid: &removed_paid,
        verdicts: verdicts.as_ref(),
        started,
    };
    let shared_sweep = opened.sweep.is_some();
    let exit = match opened.sweep.take() {
        None => ending.of_own_run(&opened.documents(), &dispatcher, stderr).await,
        Some(sweep) => {
            sweep
                .finish(&ending, &opened.documents(), &opened.videos, dispatcher, stderr)
                .await
        }
    };
    if uploads.files > 0 {
        let _ = writeln!(
            stderr,
            "uploaded {} local file{} ({} bytes); reused for {} more create{}",
            uploads.files,
            if uploads.files == 1 { "" } else { "s" },
            uploads.bytes,
            uploads.reused,
            if uploads.reused == 1 { "" } else { "s" }
        );
    }
    connection.close(stderr).await;
    if let Err(e) = closed {
        let hint = if shared_sweep {
            "a rerun resumes from what the database holds"
        } else {
            "free some space or fix the folder, then rerun to resume"
        };
        return Err(fail(&e, hint, Exit::Failure));
    }
    Ok(exit)
}

impl Opened {
    /// Jobs the store has that the manifest no longer has.
    fn removed(&self, plan: &crate::plan::Plan) -> usize {
        let kept = plan
            .jobs
            .iter()
            .filter(|j| self.history.jobs.contains_key(j.id.as_str()))
            .count();
        self.history.jobs.len() - kept
    }
}
