//! `kling-batch run`: credentials, plan, the output folder and its journal, price quotes, then
//! the executor; at the end results.csv, the summary and the exit code. Everything a rerun needs
//! is in the output folder, so running the same command again resumes.

use super::context::{fail, new_run_id, run_context};
use super::finish::{confirm, copy_manifest, exit_code, snapshot, summary_json_text, verify_files};
use super::quotes::quote_reservations;
use super::resume::{ResumeSettings, resume_command};
use super::settings::Flags;
use super::spend::{balance_covers, cap_can_run_a_job};
use crate::cli::RunArgs;
use crate::client::credentials::{self, Credentials, ProcessEnv};
use crate::client::{Class, Pacer, RunApi};
use crate::commands::load::load_plan;
use crate::error::{CommandFailure, Exit};
use crate::journal::{self, Record};
use crate::output::folder::{JOURNAL, OutDir, RESULTS};
use crate::output::videos::{LocalVideos, OpenUpload, VideoStore};
use crate::report::{RunSummary, render_summary, write_results_csv};
use crate::runner::{Dispatcher, JobPhase, execute};
use crate::sim::{self, SimConfig, SimHandle};
use crate::store::{LocalRunStore, RunStore};
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
    runtime.block_on(run_async(args, quiet, log_file, stderr))
}

async fn run_async(
    mut args: RunArgs,
    quiet: bool,
    log_file: Option<&std::path::Path>,
    stderr: &mut dyn Write,
) -> Result<Exit, CommandFailure> {
    let started = Instant::now();
    let given_out = args.out.clone();
    args.out = crate::output::folder::expand_template(&args.out, std::time::SystemTime::now());
    // Flags are checked before anything starts; the recorded settings of an earlier run in the
    // same folder fill in what was not given (a resume keeps its cap, pace and target).
    let flags = Flags::check(&args)?;
    // `--out s3://bucket/prefix`: videos and results go to object storage; the checkpoint needs a
    // place of its own (`--state DIR` for the journal, or a database).
    let (bucket_url, state_arg) = super::bucket::split_out_and_state(&mut args)?;
    // `--state`: the sweep's state lives in PostgreSQL, shared by its workers, not in the folder.
    let state_url = crate::commands::state::state_url(state_arg)?;
    let recorded = match state_url {
        Some(_) => None,
        None => crate::journal::last_run_started(&args.out.join(JOURNAL)),
    };
    let recorded_settings = recorded.as_ref().and_then(|r| r.settings.clone()).unwrap_or_default();
    if !args.simulate && args.api_base.is_none() && recorded_settings.simulate {
        let _ = writeln!(
            stderr,
            "note: this folder's run used the simulator; resuming on it (give --api-base to change)"
        );
        args.simulate = true;
    }
    if args.api_base.is_none() && !args.simulate {
        args.api_base = recorded_settings.api_base.clone();
    }
    // The simulator's speed, once whether this run simulates is settled: a flag, else what the
    // folder's simulated run recorded, else the default for a simulated run.
    let time_scale = match (args.time_scale, recorded_settings.time_scale) {
        (Some(_), _) => flags.time_scale,
        (None, Some(recorded)) if args.simulate => recorded,
        (None, _) if args.simulate => super::settings::SIMULATE_TIME_SCALE,
        _ => flags.time_scale,
    };
    // The key first: without one nothing else matters.
    let mut simulator: Option<SimHandle> = None;
    let credentials = if args.simulate {
        let config = SimConfig {
            adopt_unknown_tasks: true,
            time_scale,
            // A fresh seed per run: a resumed run's simulator must not hand out the task ids the
            // previous one did.
            seed: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64),
            // A trial run is never stopped by the simulator's pretend balance ($10,000,000).
            balance_cents: 1_000_000_000,
            ..SimConfig::default()
        };
        match sim::start(config).await {
            Ok(handle) => {
                let c = Credentials {
                    api_key: credentials::ApiKey::new(handle.api_key()),
                    base_url: handle.base_url().to_string(),
                };
                let _ = writeln!(
                    stderr,
                    "simulating RunAPI at {} (no key, no cost; time ×{time_scale})",
                    handle.base_url()
                );
                simulator = Some(handle);
                c
            }
            Err(e) => return Err(fail(format!("cannot start the simulator: {e}"), "", Exit::Failure)),
        }
    } else {
        match credentials::resolve(&ProcessEnv, args.api_base.as_deref()) {
            Ok(c) => c,
            Err(e) => {
                let exit = if matches!(e, credentials::CredentialsError::NoKey { .. }) {
                    Exit::Auth
                } else {
                    Exit::Invalid
                };
                return Err(fail(&e, e.hint(), exit));
            }
        }
    };
    let credentials_base = credentials.base_url.clone();

    let plan = match load_plan(&args.manifest, args.max_input_bytes) {
        Ok(plan) => {
            tracing::debug!(
                jobs = plan.jobs.len(),
                seconds = started.elapsed().as_secs_f64(),
                "planned"
            );
            Arc::new(plan)
        }
        Err(e) => return Err(crate::error::CommandError::Manifest(e).into()),
    };
    let mut recorded_cap = recorded.as_ref().and_then(|r| r.cap).map(Money::from_micro_cents);
    let mut recorded_settings = recorded_settings;
    let mut sweep_parts = None;
    if let Some(url) = &state_url {
        let mut client = crate::commands::state::connect(url).await?;
        // A bucket names the sweep by its address (unless --run does).
        let name = match (&bucket_url, &args.run_name) {
            (Some(url), None) => url.to_string(),
            _ => crate::commands::state::sweep_name(args.run_name.as_deref(), &args.out),
        };
        let sweep = crate::store::postgres::Sweep::register(
            &mut client,
            &name,
            &plan,
            &new_run_id(),
            &args.manifest.display().to_string(),
        )
        .await
        .map_err(crate::commands::state::failure)?;
        // The limits recorded with the sweep are kept unless a flag replaces them (as a resume's).
        recorded_cap = sweep.cap;
        recorded_settings = sweep.settings.clone().unwrap_or_default();
        let _ = writeln!(
            stderr,
            "{} sweep `{}` in the state database",
            if sweep.created { "registered" } else { "joining" },
            sweep.name
        );
        sweep_parts = Some((url.clone(), client, sweep));
    }
    let settled = flags.settle(&recorded_settings, recorded_cap, &plan.limits);
    for note in &settled.notes {
        let _ = writeln!(stderr, "{note}");
    }
    if args.refresh_expired_uploads {
        let _ = writeln!(
            stderr,
            "note: --refresh-expired-uploads is no longer needed and changes nothing: a create of unknown outcome is re-sent byte for byte under its own key, which the service answers with the task the first send made"
        );
    }
    let (concurrency, rate, cap_choice, max_attempts) =
        (settled.concurrency, settled.rate, settled.cap, settled.max_attempts);
    let cap = cap_choice.amount();
    let resume_settings = ResumeSettings {
        cap: cap_choice,
        rate: Some(rate),
        concurrency: Some(concurrency),
        max_attempts,
        api_base: (!args.simulate).then(|| credentials_base.clone()),
        simulate: args.simulate,
        output: bucket_url.as_ref().map(ToString::to_string),
        time_scale: args.simulate.then_some(time_scale),
    };

    let pacer = Arc::new(Pacer::new(rate));
    let api = match RunApi::new(
        credentials,
        Arc::clone(&pacer),
        args.request_timeout.max(Duration::from_millis(50)),
    ) {
        Ok(a) => Arc::new(a),
        Err(e) => return Err(fail(format!("cannot build the HTTP client: {e}"), "", Exit::Failure)),
    };
    // Whose folder this is, and whether the cap can run anything, before anything is written.
    if sweep_parts.is_none() {
        super::folder::check(&args, recorded.as_ref(), log_file)?;
    }
    if let Some(cap) = cap
        && recorded.is_none()
    {
        cap_can_run_a_job(cap, &plan, &journal::Replayed::default())?;
    }
    // The key is checked before anything is written or created (a refused key costs nothing).
    let mut check = api.check_key().await;
    for wait_ms in [200, 800] {
        // A busy service (5xx, 429, a reset) gets two more tries; its answer is worth waiting for.
        match &check {
            Err(e) if matches!(e.class(), Class::Transient | Class::RateLimited) => {
                tokio::time::sleep(e.retry_after().unwrap_or(Duration::from_millis(wait_ms))).await;
                check = api.check_key().await;
            }
            _ => break,
        }
    }
    match check {
        Ok(_) => {}
        Err(e) if e.class() == Class::Auth => {
            return Err(
                CommandFailure::new(Exit::Auth, format!("the API key was refused: {}", e.message()))
                    .hint("check RUNAPI_API_KEY (or run `runapi login`); nothing was written or sent"),
            );
        }
        Err(e) => tracing::warn!(error = %e, "the key could not be checked; going on"),
    }
    // Can the run store anything there? Before anything is written or created.
    let bucket = match &bucket_url {
        Some(url) => Some(super::bucket::probe(url).await?),
        None => None,
    };
    let open_folder = |shared: bool| {
        let opened = if shared {
            OutDir::open_shared(&args.out)
        } else {
            OutDir::open(&args.out)
        };
        opened.map_err(|e| {
            let exit = match e {
                crate::output::folder::OutDirError::Symlink { .. } => Exit::Invalid,
                _ => Exit::Failure,
            };
            fail(&e, e.hint(), exit)
        })
    };
    if let Some((url, client, sweep)) = sweep_parts.take() {
        // A shared sweep: its folder is shared by the workers (none when the output is a bucket).
        let out = match bucket {
            Some(_) => None,
            None => Some(open_folder(true)?),
        };
        return super::sweep::run_shared(
            super::sweep::SharedStart {
                args: &args,
                given_out: &given_out,
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
            },
            stderr,
        )
        .await;
    }
    let out = open_folder(false)?;
    let journal_path = out.path(JOURNAL);
    if args.repair_journal && journal_path.exists() {
        match journal::repair(&journal_path) {
            Ok(r) => {
                let _ = writeln!(
                    stderr,
                    "repaired {}: kept {} record(s){}",
                    journal_path.display(),
                    r.kept,
                    r.aside.as_ref().map_or(String::new(), |p| format!(
                        ", set {} damaged line(s) aside in {}",
                        r.set_aside,
                        p.display()
                    ))
                );
            }
            Err(e) => return Err(fail(&e, e.hint(), Exit::Failure)),
        }
    }
    let (store, history, recovery) = match LocalRunStore::open(&journal_path) {
        Ok(r) => r,
        Err(e) => return Err(fail(&e, e.hint(), Exit::Failure)),
    };
    if recovery.torn_tail_bytes > 0 {
        let _ = writeln!(
            stderr,
            "note: the journal's last line was cut short ({} bytes, from an interrupted write) and was dropped",
            recovery.torn_tail_bytes
        );
    }
    if let Some(cap) = cap {
        cap_can_run_a_job(cap, &plan, &history)?;
    }
    let store: Arc<dyn RunStore> = Arc::new(store);
    let run_id = history.run_id.clone().unwrap_or_else(new_run_id);
    copy_manifest(&out, &args.manifest, stderr);

    // Job ids are unique in a plan, so the journal's other jobs are the ones the manifest dropped.
    let resumed = plan
        .jobs
        .iter()
        .filter(|j| history.jobs.contains_key(j.id.as_str()))
        .count();
    let removed = history.jobs.len() - resumed;
    if !history.jobs.is_empty() {
        let _ = writeln!(
            stderr,
            "resuming {}: {resumed} of {} jobs seen before",
            out.root().display(),
            plan.jobs.len()
        );
    }
    tracing::debug!(
        jobs = history.jobs.len(),
        seconds = started.elapsed().as_secs_f64(),
        "journal replayed"
    );
    let videos: Arc<dyn VideoStore> = match &bucket {
        Some(bucket) => {
            let store = crate::output::bucket_videos::BucketVideos::open(bucket.clone(), Arc::clone(&store))
                .await
                .map_err(super::bucket::failure)?;
            // Uploads a killed run left open are aborted before anything else: no orphaned parts.
            let open: Vec<OpenUpload> = history
                .jobs
                .iter()
                .flat_map(|(job, f)| {
                    f.open_uploads.iter().map(move |(o, id)| OpenUpload {
                        job: job.clone(),
                        object: o.clone(),
                        upload_id: id.clone(),
                        fence: None,
                    })
                })
                .collect();
            let (aborted, problems) = store.abort_open_uploads(&open).await;
            if aborted > 0 {
                let _ = writeln!(stderr, "aborted {aborted} unfinished upload(s) of an earlier run");
            }
            for problem in problems {
                let _ = writeln!(stderr, "warning: an unfinished upload could not be aborted: {problem}");
            }
            Arc::new(store)
        }
        None => Arc::new(LocalVideos::new(out.root())),
    };
    let files_ok = verify_files(&plan, &history, videos.as_ref());
    tracing::debug!(seconds = started.elapsed().as_secs_f64(), "recorded videos checked");

    let reservations = quote_reservations(&api, &plan, &history, stderr).await;
    tracing::debug!(seconds = started.elapsed().as_secs_f64(), "prices quoted");
    let estimates = reservations.clone();
    let dispatcher_run_id = run_id.clone();
    let settings = super::context::dispatcher_settings(&args, run_id, (concurrency, rate, max_attempts), cap, None);
    let mut dispatcher = Dispatcher::new(
        Arc::clone(&plan),
        reservations,
        &history,
        &files_ok,
        settings,
        tokio::time::Instant::now(),
    );
    // The dispatcher holds what it needs; the journal's replay is not kept through the run, but
    // the paid jobs the manifest no longer has stay listed.
    let removed_paid = crate::report::removed_paid(&plan, &history);
    drop(history);
    tracing::debug!(seconds = started.elapsed().as_secs_f64(), "ready to submit");
    let ctx = run_context(&args, &plan, &api, Arc::clone(&store), Arc::clone(&videos), None)?;
    let to_spend: Money = dispatcher
        .jobs()
        .iter()
        .zip(&estimates)
        .filter(|(j, _)| j.phase() == JobPhase::Queued)
        .map(|(_, m)| *m)
        .sum();
    if cap_choice == super::settings::Cap::Default {
        // No cap was given: a run never spends more than the estimate it shows.
        let ledger = dispatcher.ledger();
        let estimate = ledger
            .spent()
            .saturating_add(ledger.reserved())
            .saturating_add(to_spend);
        dispatcher.set_cap(Some(estimate));
        let _ = writeln!(
            stderr,
            "capped at the estimate, {estimate}: the run spends no more than that (--max-spend USD to change it, --max-spend none to lift it)"
        );
    }
    store.append(
        &Record::RunStarted {
            run_id: dispatcher_run_id,
            at: crate::util::time_format::now(),
            manifest: Some(args.manifest.display().to_string()),
            cap: dispatcher.ledger().cap().map(Money::micro_cents),
            settings: Some(resume_settings.to_recorded()),
        },
        None,
    );
    if let Some(exit) = balance_covers(&api, &args, &dispatcher, &estimates, to_spend, stderr).await {
        return Ok(exit);
    }
    if !confirm(
        &args,
        to_spend,
        dispatcher
            .jobs()
            .iter()
            .filter(|j| j.phase() == JobPhase::Queued)
            .count(),
        stderr,
    ) {
        let _ = writeln!(stderr, "cancelled: nothing was submitted");
        return Ok(Exit::Interrupted);
    }
    let mut signals = crate::runner::signals::listen();
    let finished_before = dispatcher.jobs().iter().filter(|j| j.phase().is_terminal()).count();
    let mut progress = crate::report::Progress::new(plan.jobs.len(), finished_before, quiet);
    // results.csv is rewritten while the run goes, when something changed, and never more than
    // 5 % of the time (a 100,000-row file takes a few hundred milliseconds).
    // The state the run starts from needs no write before the first submit (100,000 rows would
    // hold it up); the first change does.
    let mut last_write = Some((snapshot(&dispatcher), std::time::Instant::now(), Duration::ZERO));
    execute(&mut dispatcher, &ctx, &mut signals, |d| {
        let now = snapshot(d);
        let due = last_write
            .as_ref()
            .is_none_or(|(seen, at, took)| *seen != now && at.elapsed() >= *took * 20);
        // (In object storage results.csv is written once, at the end: a put per refresh of a
        // large sweep would cost more than it tells.)
        if due && bucket.is_none() {
            let begun = std::time::Instant::now();
            let _ = out.write_atomic_with(RESULTS, |w| write_results_csv(&plan, d.jobs(), &removed_paid, w));
            last_write = Some((now.clone(), begun, begun.elapsed()));
        }
        progress.update(&now, false);
    })
    .await;
    progress.update(&snapshot(&dispatcher), true);
    progress.finish();
    let uploads = ctx.uploads.counts();
    drop(ctx);
    let journal_result = store.close().await;
    let documents = super::bucket::Documents {
        out: Some(&out),
        bucket: bucket.as_ref(),
    };
    documents
        .write_with(
            RESULTS,
            |w| write_results_csv(&plan, dispatcher.jobs(), &removed_paid, w),
            stderr,
        )
        .await;
    let exit = exit_code(dispatcher.stop_reason(), dispatcher.jobs());
    let status = crate::report::RunStatus::of_run(&plan, dispatcher.jobs(), super::finish::spend(&dispatcher), removed);
    let axes = crate::report::Axes::default_for(&plan);
    let gallery =
        |w: &mut dyn Write| crate::report::write_gallery(&plan, dispatcher.jobs(), &removed_paid, &axes, &status, w);
    documents
        .write_with(crate::output::folder::REPORT, gallery, stderr)
        .await;
    let summary_json = summary_json_text(&plan, &dispatcher, removed, exit, started.elapsed());
    documents
        .write_with("summary.json", |w| w.write_all(summary_json.as_bytes()), stderr)
        .await;
    let finished = dispatcher.jobs().iter().all(|j| j.phase().is_terminal());
    if finished {
        for part in out.stray_parts() {
            let _ = std::fs::remove_file(part);
        }
    }
    let output_place = match &bucket {
        Some(b) => std::path::PathBuf::from(b.url().to_string()),
        None => out.root().to_path_buf(),
    };
    let summary = render_summary(&RunSummary {
        plan: &plan,
        jobs: dispatcher.jobs(),
        ledger: dispatcher.ledger(),
        stop: dispatcher.stop_reason(),
        elapsed: started.elapsed(),
        out: &output_place,
        estimates: &estimates,
        removed,
        resume: resume_command(&given_out, &args.out, &resume_settings),
        billed_above: dispatcher.billed_above_reservations(),
    });
    let _ = write!(stderr, "{summary}");
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
    if let Some(handle) = simulator {
        handle.stop().await;
    }
    if let Err(e) = journal_result {
        return Err(fail(
            &e,
            "free some space or fix the folder, then rerun to resume",
            Exit::Failure,
        ));
    }
    Ok(exit)
}
