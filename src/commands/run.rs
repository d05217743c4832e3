//! `kling-batch run`: credentials, plan, the output folder and its journal, price quotes, then
//! the executor; at the end results.csv, the summary and the exit code. Everything a rerun needs
//! is in the output folder, so running the same command again resumes.

use crate::cli::RunArgs;
use crate::client::credentials::{self, Credentials, ProcessEnv};
use crate::client::{Pacer, RunApi};
use crate::commands::load::load_plan;
use crate::error::{CommandFailure, Exit};
use crate::journal::{self, JournalWriter, Record, Replayed};
use crate::output::folder::{JOURNAL, OutDir, RESULTS};
use crate::plan::Plan;
use crate::report::{RunSummary, render_summary, write_results_csv};
use crate::runner::{Context, Dispatcher, JobPhase, Settings, StopReason, execute};
use crate::sim::{self, SimConfig, SimHandle};
use crate::util::money::Money;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

const DEFAULT_CONCURRENCY: u32 = 4;
const DEFAULT_RATE: f64 = 2.0;
const SIMULATE_TIME_SCALE: f64 = 100.0;
const MIN_TIME_SCALE: f64 = 1e-3;
const MAX_TIME_SCALE: f64 = 1e6;
/// One request every 100 s at the slowest; the pacer cannot go faster than this either.
const MIN_RATE: f64 = 0.01;
const MAX_RATE: f64 = 100_000.0;

pub fn run(args: RunArgs, quiet: bool, stderr: &mut dyn Write) -> Result<Exit, CommandFailure> {
    // One thread runs the whole run (the dispatcher, every HTTP exchange); file writes, hashing
    // and fsyncs go to the blocking pool. Measured on scenario 1 of BENCHMARKS.md: a third less
    // user CPU than the multi-threaded runtime, whose workers mostly woke each other.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return Err(fail(format!("cannot start the async runtime: {e}"), "", Exit::Failure)),
    };
    runtime.block_on(run_async(args, quiet, stderr))
}

fn fail(message: impl std::fmt::Display, hint: &str, exit: Exit) -> CommandFailure {
    CommandFailure::new(exit, message).hint(hint)
}

/// The settings a printed resume command spells out, so that following it can never run with
/// another cap, pace or target than the run it resumes.
struct ResumeSettings {
    cap: Option<Money>,
    rate: f64,
    concurrency: u32,
    api_base: Option<String>,
    simulate: bool,
}

/// A flag given again replaces the recorded value (and the run says so); otherwise the recorded
/// one is kept; a folder without one takes the manifest's `limits:`.
fn keep_or_replace<T: PartialEq + std::fmt::Display + Copy>(
    flag: &str,
    given: Option<T>,
    recorded: Option<T>,
    manifest: Option<T>,
    stderr: &mut dyn Write,
) -> Option<T> {
    match (given, recorded) {
        (Some(g), Some(r)) if g != r => {
            let _ = writeln!(stderr, "note: {flag} {g} replaces the {r} this folder's run recorded");
            Some(g)
        }
        (Some(g), _) => Some(g),
        (None, Some(r)) => {
            if let Some(m) = manifest.filter(|m| *m != r) {
                let _ = writeln!(
                    stderr,
                    "note: keeping this folder's recorded {flag} {r} (the manifest's limits say {m}); give {flag} to change it"
                );
            }
            Some(r)
        }
        (None, None) => manifest,
    }
}

/// The command line that resumes this run, quoted for a POSIX shell, with a templated `--out`
/// replaced by the folder it named this time, and every setting that matters spelled out.
fn resume_command(given_out: &std::path::Path, out: &std::path::Path, settings: &ResumeSettings) -> String {
    let quote = |a: String| {
        if !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:@%+,".contains(c)) {
            a
        } else {
            format!("'{}'", a.replace('\'', "'\\''"))
        }
    };
    let given = given_out.to_string_lossy().into_owned();
    let resolved = out.to_string_lossy().into_owned();
    let mut words = vec!["kling-batch".to_string()];
    words.extend(
        std::env::args()
            .skip(1)
            .map(|a| {
                if a == given {
                    resolved.clone()
                } else if let Some(v) = a.strip_prefix("--out=").filter(|v| *v == given) {
                    format!("--out={v}").replace(&given, &resolved)
                } else {
                    a
                }
            })
            .map(quote),
    );
    let given = |flag: &str| {
        words
            .iter()
            .any(|w| w == flag || w.starts_with(&format!("{flag}=")) || w.starts_with(&format!("'{flag}=")))
    };
    let mut extra: Vec<String> = Vec::new();
    if settings.simulate {
        if !given("--simulate") {
            extra.push("--simulate".into());
        }
    } else if let Some(base) = settings.api_base.as_ref().filter(|_| !given("--api-base")) {
        extra.extend(["--api-base".to_string(), quote(base.clone())]);
    }
    if let Some(cap) = settings.cap.filter(|_| !given("--max-spend")) {
        extra.extend(["--max-spend".to_string(), format!("{:.2}", cap.usd())]);
    }
    if !given("--rate") {
        extra.extend(["--rate".to_string(), settings.rate.to_string()]);
    }
    if !given("--concurrency") {
        extra.extend(["--concurrency".to_string(), settings.concurrency.to_string()]);
    }
    words.extend(extra);
    words.join(" ")
}

fn new_run_id() -> String {
    let seed = format!("{:?}:{}", std::time::SystemTime::now(), std::process::id());
    crate::util::hex::hex(&Sha256::digest(seed.as_bytes())[..6])
}

async fn run_async(mut args: RunArgs, quiet: bool, stderr: &mut dyn Write) -> Result<Exit, CommandFailure> {
    let started = Instant::now();
    let given_out = args.out.clone();
    args.out = crate::output::folder::expand_template(&args.out, std::time::SystemTime::now());
    let time_scale = args
        .time_scale
        .unwrap_or(if args.simulate { SIMULATE_TIME_SCALE } else { 1.0 });
    if !(time_scale.is_finite() && (MIN_TIME_SCALE..=MAX_TIME_SCALE).contains(&time_scale)) {
        return Err(fail(
            format!("--time-scale must be between {MIN_TIME_SCALE} and {MAX_TIME_SCALE}"),
            "for example --time-scale 100 (generation 100 times faster than real time)",
            Exit::Usage,
        ));
    }
    // Flags are checked before anything starts; the recorded settings of an earlier run in the
    // same folder fill in what was not given (a resume keeps its cap, pace and target).
    if args.concurrency == Some(0) || args.max_attempts == 0 {
        return Err(fail(
            "--concurrency and --max-attempts must be at least 1",
            "",
            Exit::Usage,
        ));
    }
    if let Some(rate) = args.rate
        && !(rate.is_finite() && (MIN_RATE..=MAX_RATE).contains(&rate))
    {
        return Err(fail(
            format!("--rate must be between {MIN_RATE} and {MAX_RATE} requests per second"),
            "for example --rate 2",
            Exit::Usage,
        ));
    }
    let flag_cap = match args.max_spend {
        None => None,
        Some(usd) => match Money::from_usd_f64(usd).filter(|m| *m > Money::ZERO) {
            Some(m) => Some(m),
            None => {
                return Err(fail(
                    format!(
                        "--max-spend must be a number of US dollars above 0 and at most {}",
                        Money::MAX_INPUT
                    ),
                    "for example --max-spend 25",
                    Exit::Usage,
                ));
            }
        },
    };
    let recorded = crate::journal::last_run_started(&args.out.join(JOURNAL));
    let recorded_settings = recorded.as_ref().and_then(|r| r.1.clone()).unwrap_or_default();
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

    let plan = match load_plan(&args.manifest) {
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
    let recorded_cap = recorded.as_ref().and_then(|r| r.0).map(Money::from_micro_cents);
    let concurrency = keep_or_replace(
        "--concurrency",
        args.concurrency,
        recorded_settings.concurrency,
        plan.limits.concurrency.map(|c| c.get()),
        stderr,
    )
    .unwrap_or(DEFAULT_CONCURRENCY);
    let rate = keep_or_replace(
        "--rate",
        args.rate,
        recorded_settings.rate,
        plan.limits.rate_per_second,
        stderr,
    )
    .unwrap_or(DEFAULT_RATE);
    let cap = keep_or_replace("--max-spend", flag_cap, recorded_cap, plan.limits.max_spend, stderr);
    let resume_settings = ResumeSettings {
        cap,
        rate,
        concurrency,
        api_base: (!args.simulate).then(|| credentials_base.clone()),
        simulate: args.simulate,
    };

    let out = match OutDir::open(&args.out) {
        Ok(o) => o,
        Err(e @ crate::output::folder::OutDirError::Symlink { .. }) => {
            return Err(fail(&e, e.hint(), Exit::Invalid));
        }
        Err(e) => return Err(fail(&e, e.hint(), Exit::Failure)),
    };
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
    let (history, recovery) = match journal::read_replayed(&journal_path) {
        Ok(r) => r,
        Err(e) => return Err(fail(&e, e.hint(), Exit::Failure)),
    };
    if history.run_id.is_none() && history.jobs.is_empty() && !args.start_afresh {
        let videos = out.earlier_videos();
        if videos > 0 {
            // Nothing the tool advises may lead to a second bill: without the journal, every job
            // here would be created and paid for again.
            return Err(fail(
                format!(
                    "{} holds {videos} video(s) of an earlier run but no journal: a new run would create and pay for every job again",
                    out.root().display()
                ),
                "put its journal.jsonl back (a damaged one: add --repair-journal), or choose another --out; to pay again for every job here, add --start-afresh",
                Exit::Invalid,
            ));
        }
    }
    if recovery.torn_tail_bytes > 0 {
        let _ = writeln!(
            stderr,
            "note: the journal's last line was cut short ({} bytes, from an interrupted write) and was dropped",
            recovery.torn_tail_bytes
        );
    }
    let writer = match JournalWriter::open(&journal_path, recovery.valid_len) {
        Ok(w) => Arc::new(w),
        Err(e) => {
            return Err(fail(
                format!("cannot open {}: {e}", journal_path.display()),
                "",
                Exit::Failure,
            ));
        }
    };
    let run_id = history.run_id.clone().unwrap_or_else(new_run_id);
    writer.append(&Record::RunStarted {
        run_id: run_id.clone(),
        at: crate::util::time_format::now(),
        manifest: Some(args.manifest.display().to_string()),
        cap: cap.map(Money::micro_cents),
        settings: Some(crate::journal::RecordedSettings {
            rate: Some(rate),
            concurrency: Some(concurrency),
            api_base: resume_settings.api_base.clone(),
            simulate: args.simulate,
        }),
    });
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
    let files_ok = verify_files(&plan, &history, &out);
    tracing::debug!(seconds = started.elapsed().as_secs_f64(), "recorded videos checked");

    let pacer = Arc::new(Pacer::new(rate));
    let api = match RunApi::new(
        credentials,
        Arc::clone(&pacer),
        args.request_timeout.max(Duration::from_millis(50)),
    ) {
        Ok(a) => Arc::new(a),
        Err(e) => return Err(fail(format!("cannot build the HTTP client: {e}"), "", Exit::Failure)),
    };
    let reservations = quote_reservations(&api, &plan, &history, stderr).await;
    tracing::debug!(seconds = started.elapsed().as_secs_f64(), "prices quoted");
    let estimates = reservations.clone();
    let settings = Settings {
        run_id,
        concurrency: concurrency as usize,
        max_attempts: args.max_attempts,
        cap,
        task_deadline: args.task_deadline,
        time_scale,
        downloads_at_once: (concurrency as usize).clamp(2, 16),
        seed: u64::from(std::process::id()),
    };
    let mut dispatcher = Dispatcher::new(
        Arc::clone(&plan),
        reservations,
        &history,
        &files_ok,
        settings,
        tokio::time::Instant::now(),
    );
    // The dispatcher holds what it needs; the journal's replay is not kept through the run.
    drop(history);
    tracing::debug!(seconds = started.elapsed().as_secs_f64(), "ready to submit");
    let downloads = match reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::limited(5))
        .build()
    {
        Ok(c) => c,
        Err(e) => return Err(fail(format!("cannot build the HTTP client: {e}"), "", Exit::Failure)),
    };
    let ctx = Context {
        plan: Arc::clone(&plan),
        api,
        downloads,
        journal: Arc::clone(&writer),
        videos: out.videos(),
        max_video_bytes: args.max_video_bytes,
        stall: crate::output::download::Stall {
            min_bytes_per_second: args.min_download_speed,
            window: args.stall_time,
        },
        grace: args.grace,
        max_runtime: args.max_runtime,
        refresh: Duration::from_secs(2),
    };
    let to_spend: Money = dispatcher
        .jobs()
        .iter()
        .zip(&estimates)
        .filter(|(j, _)| j.phase() == JobPhase::Queued)
        .map(|(_, m)| *m)
        .sum();
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
    let mut signals = listen_for_interrupts();
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
        if due {
            let begun = std::time::Instant::now();
            let _ = out.write_atomic_with(RESULTS, |w| write_results_csv(&plan, d.jobs(), w));
            last_write = Some((now.clone(), begun, begun.elapsed()));
        }
        progress.update(&now, false);
    })
    .await;
    progress.update(&snapshot(&dispatcher), true);
    progress.finish();
    drop(ctx);
    let journal_result = match Arc::try_unwrap(writer) {
        Ok(w) => w.finish(),
        Err(_) => Ok(()),
    };
    if let Err(e) = out.write_atomic_with(RESULTS, |w| write_results_csv(&plan, dispatcher.jobs(), w)) {
        let _ = writeln!(stderr, "warning: cannot write {}: {e}", out.path(RESULTS).display());
    }
    let exit = exit_code(dispatcher.stop_reason(), dispatcher.jobs());
    let ledger = dispatcher.ledger();
    let status = crate::report::RunStatus::of_run(
        &plan,
        dispatcher.jobs(),
        ledger.spent(),
        ledger.reserved(),
        ledger.cap(),
        removed,
    );
    let axes = crate::report::Axes::default_for(&plan);
    let gallery = |w: &mut dyn Write| crate::report::write_gallery(&plan, dispatcher.jobs(), &axes, &status, w);
    if let Err(e) = out.write_atomic_with(crate::output::folder::REPORT, gallery) {
        let _ = writeln!(stderr, "warning: cannot write report.html: {e}");
    }
    write_summary_json(&out, &plan, &dispatcher, removed, exit, started.elapsed(), stderr);
    let finished = dispatcher.jobs().iter().all(|j| j.phase().is_terminal());
    if finished {
        for part in out.stray_parts() {
            let _ = std::fs::remove_file(part);
        }
    }
    let summary = render_summary(&RunSummary {
        plan: &plan,
        jobs: dispatcher.jobs(),
        ledger: dispatcher.ledger(),
        stop: dispatcher.stop_reason(),
        elapsed: started.elapsed(),
        out: out.root(),
        estimates: &estimates,
        removed,
        resume: resume_command(&given_out, &args.out, &resume_settings),
        billed_above: dispatcher.billed_above_reservations(),
    });
    let _ = write!(stderr, "{summary}");
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

/// `summary.json` beside results.csv: the run's status, exit code and why it stopped, for alerts.
fn write_summary_json(
    out: &OutDir,
    plan: &Plan,
    d: &Dispatcher,
    removed: usize,
    exit: Exit,
    elapsed: Duration,
    stderr: &mut dyn Write,
) {
    let ledger = d.ledger();
    let status =
        crate::report::RunStatus::of_run(plan, d.jobs(), ledger.spent(), ledger.reserved(), ledger.cap(), removed);
    let mut value = serde_json::to_value(&status).unwrap_or_default();
    value["exit_code"] = exit.code().into();
    value["stop_reason"] = d.stop_reason().map(stop_name).into();
    value["wall_seconds"] = elapsed.as_secs_f64().into();
    value["finished_at"] = crate::util::time_format::now().into();
    let text = serde_json::to_string_pretty(&value).unwrap_or_default() + "\n";
    if let Err(e) = out.write_atomic("summary.json", text.as_bytes()) {
        let _ = writeln!(stderr, "warning: cannot write summary.json: {e}");
    }
}

fn stop_name(stop: &StopReason) -> &'static str {
    match stop {
        StopReason::Auth(_) => "auth",
        StopReason::Local(_) => "local_error",
        StopReason::Interrupted => "interrupted",
        StopReason::Credits(_) => "credits",
        StopReason::CapReached { .. } => "spend_cap",
        StopReason::MaxRuntime => "max_runtime",
    }
}

/// On a terminal, asks before spending more than `--confirm-above`; off a terminal (cron, CI,
/// pipes) never asks: the spend cap is the guard there.
fn confirm(args: &RunArgs, estimate: Money, jobs: usize, stderr: &mut dyn Write) -> bool {
    use std::io::IsTerminal;
    let threshold = Money::from_usd_f64(args.confirm_above).unwrap_or(Money::ZERO);
    if args.yes
        || args.simulate
        || estimate <= threshold
        || !std::io::stdin().is_terminal()
        || !std::io::stderr().is_terminal()
    {
        return true;
    }
    let _ = write!(
        stderr,
        "{jobs} job(s) to submit, estimated {estimate}. Go ahead? [y/N] "
    );
    let _ = stderr.flush();
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).is_ok()
        && matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// Where the run stands, for the progress display.
fn snapshot(d: &Dispatcher) -> crate::report::Snapshot {
    let mut s = crate::report::Snapshot {
        total: d.jobs().len(),
        spent: d.ledger().spent(),
        cap: d.ledger().cap(),
        ..Default::default()
    };
    for job in d.jobs() {
        match job.phase() {
            JobPhase::Done => s.done += 1,
            JobPhase::Failed => s.failed += 1,
            JobPhase::Queued => s.queued += 1,
            JobPhase::Submitting => s.submitting += 1,
            JobPhase::Generating => s.generating += 1,
            JobPhase::Downloading => s.downloading += 1,
            JobPhase::TimedOut | JobPhase::Unresolved => {}
        }
    }
    s
}

fn exit_code(stop: Option<&StopReason>, jobs: &[crate::runner::JobRun]) -> Exit {
    match stop {
        Some(StopReason::Auth(_)) => return Exit::Auth,
        Some(StopReason::Local(_)) => return Exit::Failure,
        Some(StopReason::Interrupted) => return Exit::Interrupted,
        Some(StopReason::Credits(_)) => return Exit::Credits,
        Some(StopReason::CapReached { .. }) => return Exit::SpendCap,
        Some(StopReason::MaxRuntime) | None => {}
    }
    if jobs.iter().any(|j| !j.phase().is_terminal()) {
        Exit::TimedOut
    } else if jobs.iter().any(|j| j.phase() == JobPhase::Failed) {
        Exit::JobsFailed
    } else {
        Exit::Success
    }
}

/// Ctrl-C (and SIGTERM) presses, counted: the first stops submitting, the second abandons the
/// work in flight, the third exits at once.
fn listen_for_interrupts() -> tokio::sync::mpsc::UnboundedReceiver<u8> {
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut presses = 0u8;
        #[cfg(unix)]
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        loop {
            #[cfg(unix)]
            let got = match term.as_mut() {
                Some(t) => tokio::select! { r = tokio::signal::ctrl_c() => r.is_ok(), r = t.recv() => r.is_some() },
                None => tokio::signal::ctrl_c().await.is_ok(),
            };
            #[cfg(not(unix))]
            let got = tokio::signal::ctrl_c().await.is_ok();
            if !got {
                return;
            }
            presses = presses.saturating_add(1);
            match presses {
                1 => crate::report::print_line(
                    "interrupted: no new submissions; finishing what is in flight (Ctrl-C again to stop now)",
                ),
                2 => crate::report::print_line(
                    "stopping now: the journal holds every task id, a rerun picks them up (Ctrl-C again to exit at once)",
                ),
                _ => std::process::exit(i32::from(Exit::Interrupted.code())),
            }
            if sender.send(presses).is_err() {
                return;
            }
        }
    });
    receiver
}

fn copy_manifest(out: &OutDir, manifest: &std::path::Path, stderr: &mut dyn Write) {
    let ext = manifest.extension().and_then(|e| e.to_str()).unwrap_or("yaml");
    match std::fs::read(manifest) {
        Ok(bytes) => {
            if let Err(e) = out.write_atomic(&format!("manifest.{ext}"), &bytes) {
                let _ = writeln!(stderr, "warning: cannot copy the manifest into the output folder: {e}");
            }
        }
        Err(e) => {
            let _ = writeln!(stderr, "warning: cannot copy the manifest: {e}");
        }
    }
}

/// Whether each downloaded job's file is on disk at its recorded size (see `download::present`).
fn verify_files(plan: &Plan, history: &Replayed, out: &OutDir) -> Vec<bool> {
    plan.jobs
        .iter()
        .map(|job| {
            history
                .jobs
                .get(job.id.as_str())
                .and_then(|h| h.video.as_ref())
                .is_some_and(|v| crate::output::download::present(out.root(), &v.path, v.bytes))
        })
        .collect()
}

/// What each job reserves: the service's quote for its priced shape (asked once per shape, and
/// only for jobs that may still be submitted), or the built-in estimate when there is no quote.
async fn quote_reservations(api: &RunApi, plan: &Plan, history: &Replayed, stderr: &mut dyn Write) -> Vec<Money> {
    let mut per_second: HashMap<crate::kling::pricing::PricedShape, Option<f64>> = HashMap::new();
    let mut warned = false;
    let to_submit = |id: &str| {
        history
            .jobs
            .get(id)
            .is_none_or(|h| h.resume(false) == journal::Resume::Submit)
    };
    for job in plan.jobs.iter().filter(|j| to_submit(j.id.as_str())) {
        if per_second.contains_key(&*job.priced) {
            continue;
        }
        let quoted = match api.quote(job.endpoint, &job.request.fields()).await {
            Ok(total) => Some(total.micro_cents() as f64 / f64::from(job.estimate.seconds.max(1))),
            Err(e) => {
                if !warned {
                    let _ = writeln!(
                        stderr,
                        "warning: price quotes are unavailable ({e}); reserving from the built-in price table"
                    );
                    warned = true;
                }
                None
            }
        };
        per_second.insert((*job.priced).clone(), quoted);
    }
    // A quote is never trusted below the built-in price: a service that quotes a cent would
    // otherwise make the cap meaningless (the dispatcher also raises it to the most it settled).
    plan.jobs
        .iter()
        .map(|job| match per_second.get(&*job.priced).copied().flatten() {
            Some(rate) => {
                Money::from_micro_cents((rate * f64::from(job.estimate.seconds)).ceil() as u64).max(job.estimate.cost)
            }
            None => job.estimate.cost,
        })
        .collect()
}
