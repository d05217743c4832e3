//! `kling-batch review DIR`: the review app for a run folder (or a shared sweep's, with
//! `--state`), or `--import FILE.csv` of ratings made elsewhere. Reviews are kept in the folder's
//! `reviews.jsonl`; the run's own files are never changed, except by the app's Export (which
//! rewrites results.csv, report.html and review.csv as `report` does).

use super::status::{file_ok, read_state};
use crate::cli::ReviewArgs;
use crate::error::{CommandFailure, Exit};
use crate::review::app::{App, AppParts};
use crate::review::records::ReviewLog;
use std::collections::HashSet;
use std::io::Write;

pub(crate) fn run(args: ReviewArgs, stdout: &mut dyn Write, stderr: &mut dyn Write) -> Result<Exit, CommandFailure> {
    let dir = args.dir.clone();
    let folder = read_state(&dir, args.state.clone(), args.run_name.as_deref())?;
    let plan = super::report::plan_of(&dir, &folder)?;
    let reviewer = args.reviewer.clone().unwrap_or_else(login);
    if reviewer.trim().is_empty() || reviewer.len() > 100 {
        return Err(
            CommandFailure::new(Exit::Usage, "--reviewer needs a name of 1 to 100 characters")
                .hint("for example --reviewer sam"),
        );
    }
    let open_log = || {
        ReviewLog::open(&dir).map_err(|e| {
            CommandFailure::new(Exit::Failure, e).hint("the reviews are kept in the run folder: it must be writable")
        })
    };
    if let Some(file) = &args.import {
        let jobs: HashSet<&str> = plan.jobs.iter().map(|j| j.id.as_str()).collect();
        let records = crate::review::import::read(file, &jobs, &reviewer)
            .map_err(|e| CommandFailure::new(Exit::Invalid, &e).hint(e.hint()))?;
        open_log()?
            .append(&records)
            .map_err(|e| CommandFailure::new(Exit::Failure, e))?;
        let rows = records
            .iter()
            .filter(|r| matches!(r, crate::review::records::ReviewRecord::Rating { .. }))
            .count();
        let _ = writeln!(
            stdout,
            "imported {rows} rating(s) into {}",
            dir.join(crate::review::records::REVIEWS).display()
        );
        return Ok(Exit::Success);
    }
    let history = &folder.history;
    let mut jobs: Vec<crate::runner::JobRun> = plan
        .jobs
        .iter()
        .map(|j| crate::runner::JobRun::at_rest(history.jobs.get(j.id.as_str()), file_ok(&dir, history, j.id.as_str())))
        .collect();
    crate::runner::standing::settle_at_rest(plan, &mut jobs);
    let (clips, grid) = crate::review::clips::clips(plan, &jobs);
    let listen = args
        .listen
        .unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    let public = !listen.ip().is_loopback();
    let export_dir = dir.clone();
    let (state, run_name) = (args.state.clone(), args.run_name.clone());
    let export: crate::review::app::Export = Box::new(move || {
        let folder = read_state(&export_dir, state.clone(), run_name.as_deref()).map_err(|e| e.message.clone())?;
        let plan = super::report::plan_of(&export_dir, &folder).map_err(|e| e.message.clone())?;
        let axes = crate::report::Axes::default_for(plan);
        super::report::write_reports(&export_dir, &folder, plan, &axes).map_err(|e| e.message.clone())
    });
    let app = App::new(AppParts {
        dir: dir.clone(),
        clips,
        grid,
        reviewer: reviewer.clone(),
        token: token(),
        public,
        log: open_log()?,
        export,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CommandFailure::new(Exit::Failure, format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
            CommandFailure::new(Exit::Usage, format!("cannot listen on {listen}: {e}"))
                .hint("give --listen another address or port, e.g. --listen 127.0.0.1:8765")
        })?;
        let bound = listener
            .local_addr()
            .map_err(|e| CommandFailure::new(Exit::Failure, e.to_string()))?;
        let address = app.address(bound);
        let _ = writeln!(stdout, "{address}");
        let _ = stdout.flush();
        let _ = writeln!(
            stderr,
            "reviewing {} ({} clips) as {reviewer}{}; Ctrl-C stops",
            dir.display(),
            plan.jobs.len(),
            if public {
                " — listening beyond this machine: the address carries the token every request needs"
            } else {
                ""
            }
        );
        let router = app.router();
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .map_err(|e| CommandFailure::new(Exit::Failure, format!("the review app stopped: {e}")))
    })?;
    Ok(Exit::Success)
}

/// The reviewer's default name: the login name.
fn login() -> String {
    ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|n| !n.trim().is_empty()))
        .unwrap_or_else(|| "reviewer".to_string())
}

/// 128 random bits, as hex.
fn token() -> String {
    let mut bytes = [0u8; 16];
    let random = std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
    if random.is_err() {
        use sha2::Digest;
        let seed = format!("{:?}:{}:{:p}", std::time::SystemTime::now(), std::process::id(), &bytes);
        bytes.copy_from_slice(&sha2::Sha256::digest(seed.as_bytes())[..16]);
    }
    crate::util::hex::hex(&bytes)
}
