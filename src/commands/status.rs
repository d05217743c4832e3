//! `kling-batch status DIR`: what a run folder holds, from its journal and the manifest it names,
//! without touching the network or writing anything.

use crate::error::{CommandFailure, Exit};
use crate::journal;
use crate::output::folder::JOURNAL;
use crate::report::RunStatus;
use std::io::Write;
use std::path::{Path, PathBuf};

pub(super) struct Folder {
    pub(super) history: crate::journal::Replayed,
    pub(super) torn_tail_bytes: u64,
    pub(super) plan: Option<crate::plan::Plan>,
    /// A shared sweep's workers (`--state`).
    pub(super) workers: Option<Vec<crate::store::postgres::WorkerRow>>,
}

/// The run's state: the folder's journal, or with `--state` (or `$KLING_BATCH_STATE`) the sweep's
/// records in the database.
pub(super) fn read_state(dir: &Path, state: Option<String>, run_name: Option<&str>) -> Result<Folder, CommandFailure> {
    let Some(url) = crate::commands::state::state_url(state)? else {
        return read_folder(dir);
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CommandFailure::new(Exit::Failure, format!("cannot start the async runtime: {e}")))?;
    let name = crate::commands::state::sweep_name(run_name, dir);
    let (history, workers) = runtime.block_on(async {
        let client = crate::commands::state::connect(&url, crate::store::postgres::DEFAULT_DEADLINE).await?;
        let sweep = crate::commands::state::find(&client, &name).await?;
        let history = sweep.replay(&client).await.map_err(crate::commands::state::failure)?;
        let workers = sweep.workers(&client).await.map_err(crate::commands::state::failure)?;
        Ok::<_, CommandFailure>((history, workers))
    })?;
    let plan = manifest_plan(dir, &history);
    Ok(Folder {
        history,
        torn_tail_bytes: 0,
        plan,
        workers: Some(workers),
    })
}

/// The plan of the manifest the run was given, else of the copy in the folder.
fn manifest_plan(dir: &Path, history: &crate::journal::Replayed) -> Option<crate::plan::Plan> {
    let candidates: Vec<PathBuf> = history
        .manifest
        .iter()
        .map(PathBuf::from)
        .chain(["yaml", "yml", "csv"].iter().map(|e| dir.join(format!("manifest.{e}"))))
        .collect();
    let mut plan = candidates
        .iter()
        .filter(|p| p.is_file())
        .find_map(|p| crate::commands::load::load_plan(p, None).ok())?;
    // Steps with `only:` run for the parents the folder's reviews select (and what was begun).
    let _ = crate::review::verdicts::choose(&mut plan, Some(dir), history);
    Some(plan)
}

pub(super) fn read_folder(dir: &Path) -> Result<Folder, CommandFailure> {
    let journal_path = dir.join(JOURNAL);
    if !journal_path.is_file() {
        if let Some(shared) = crate::commands::state::shared_folder(dir) {
            return Err(shared);
        }
        return Err(CommandFailure::new(
            Exit::Invalid,
            format!(
                "{} is not a kling-batch output folder (it has no {JOURNAL})",
                dir.display()
            ),
        )
        .hint("give the folder a run wrote to with --out"));
    }
    let (history, recovery) =
        journal::read_replayed(&journal_path).map_err(|e| CommandFailure::new(Exit::Failure, &e).hint(e.hint()))?;
    let plan = manifest_plan(dir, &history);
    Ok(Folder {
        history,
        torn_tail_bytes: recovery.torn_tail_bytes,
        plan,
        workers: None,
    })
}

pub(super) fn file_ok(dir: &Path, history: &crate::journal::Replayed, id: &str) -> bool {
    use crate::output::videos::{LocalVideos, VideoStore};
    let recorded = history.jobs.get(id).and_then(|h| h.video.as_ref());
    match bucket_of(history) {
        // Videos in object storage: as listed there (or, without credentials to look, as recorded).
        Some(url) => recorded.is_some_and(|v| {
            bucket_videos(&url)
                .as_ref()
                .is_none_or(|known| known.get(&v.path) == Some(&v.bytes))
        }),
        None => recorded.is_some_and(|v| LocalVideos::new(dir).present(v)),
    }
}

/// The bucket a run's videos went to, as its journal recorded it.
pub(super) fn bucket_of(history: &crate::journal::Replayed) -> Option<String> {
    history
        .settings
        .as_ref()
        .and_then(|s| s.output.clone())
        .filter(|o| o.starts_with("s3://"))
}

/// The sizes of the objects under a bucket's `videos/`, listed once per process; `None` when it
/// cannot be listed (no `AWS_*` settings here).
fn bucket_videos(url: &str) -> Option<std::collections::HashMap<String, u64>> {
    static LISTED: std::sync::OnceLock<Option<std::collections::HashMap<String, u64>>> = std::sync::OnceLock::new();
    LISTED
        .get_or_init(|| {
            let url = crate::output::bucket::BucketUrl::parse(url).ok()?;
            let bucket = crate::output::bucket::Bucket::from_env(&url).ok()?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(bucket.list_sizes(crate::output::folder::VIDEOS)).ok()
        })
        .clone()
}

pub(crate) fn run(
    dir: &Path,
    json: bool,
    state: Option<String>,
    run_name: Option<&str>,
    stdout: &mut dyn Write,
) -> Result<Exit, CommandFailure> {
    let folder = read_state(dir, state, run_name)?;
    let (history, plan) = (&folder.history, folder.plan.as_ref());
    let status = RunStatus::of_journal(history, plan, &|id| file_ok(dir, history, id));
    if json {
        let mut value = serde_json::to_value(&status).unwrap_or_default();
        value["folder"] = dir.display().to_string().into();
        value["torn_tail_bytes"] = folder.torn_tail_bytes.into();
        if let Some(workers) = &folder.workers {
            value["workers"] = serde_json::to_value(workers).unwrap_or_default();
        }
        let _ = writeln!(stdout, "{}", serde_json::to_string_pretty(&value).unwrap_or_default());
    } else {
        let _ = write!(stdout, "{}", status.render(&dir.display().to_string()));
        if let Some(workers) = &folder.workers {
            let _ = writeln!(stdout, "workers:");
            for w in workers {
                let state = if w.finished {
                    "left".to_string()
                } else {
                    format!("last heartbeat {:.0} s ago", w.seconds_since_heartbeat)
                };
                let _ = writeln!(
                    stdout,
                    "  {} (host {}, pid {}): {} job(s) held, {} in flight, {state}",
                    w.worker, w.host, w.pid, w.jobs, w.in_flight
                );
            }
        }
        if plan.is_none() {
            let _ = writeln!(
                stdout,
                "note: the manifest could not be read, so jobs never submitted are not counted"
            );
        }
        if folder.torn_tail_bytes > 0 {
            let _ = writeln!(
                stdout,
                "note: the journal ends in a torn line ({} bytes) that a resume will drop",
                folder.torn_tail_bytes
            );
        }
        if !status.finished
            && let Some(manifest) = &status.manifest
        {
            // Every recorded setting that matters, spelled out (a resume keeps them anyway), by
            // the same builder as the run's own resume line.
            use crate::commands::run::resume::{ResumeSettings, quote, resume_line};
            let settings = ResumeSettings::recorded(&history.settings.clone().unwrap_or_default(), history.cap);
            let mut words = vec!["kling-batch".to_string(), "run".to_string(), quote(manifest.clone())];
            match &settings.output {
                // Output to a bucket: this folder holds the run's journal (`--state`).
                Some(bucket) => words.extend([
                    "--out".to_string(),
                    quote(bucket.clone()),
                    "--state".to_string(),
                    quote(dir.display().to_string()),
                ]),
                None => words.extend(["--out".to_string(), quote(dir.display().to_string())]),
            }
            let command = resume_line(words, &settings);
            let _ = writeln!(stdout, "resume with: {command}");
        }
    }
    Ok(Exit::Success)
}
