//! Where a run's state lives — the one store-specific step of a run. A run of its own keeps it in
//! its output folder's journal; a worker of a shared sweep in PostgreSQL. Either way, opening it
//! gives the store and its replay, where videos go, and which recorded videos are in place
//! (`Opened`); the rest of the run is the same for both.

use super::context::{fail, new_run_id};
use super::request::Request;
use super::settings::Settled;
use super::spend::cap_can_run_a_job;
use super::sweep::{Registered, SweepWorker};
use crate::error::{CommandFailure, Exit};
use crate::journal::{self, LastRun, RecordedSettings, Replayed};
use crate::output::bucket::Bucket;
use crate::output::folder::{JOURNAL, OutDir};
use crate::output::videos::{LocalVideos, OpenUpload, VideoStore};
use crate::plan::Plan;
use crate::store::{LocalRunStore, RunStore};
use crate::util::money::Money;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

// One value per run, moved once: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub(super) enum Origin {
    /// A run of its own: the output folder's journal, and what its last run recorded.
    Folder {
        last: Option<LastRun>,
        recorded: RecordedSettings,
    },
    /// A worker of a shared sweep, registered (or joined) in the database.
    Sweep(Registered),
}

/// A run's state, opened.
pub(super) struct Opened {
    pub(super) store: Arc<dyn RunStore>,
    /// What the store held when opened.
    pub(super) history: Replayed,
    pub(super) run_id: String,
    pub(super) videos: Arc<dyn VideoStore>,
    /// Whether each job's recorded video is in place as recorded.
    pub(super) files_ok: Vec<bool>,
    /// The output folder (none when a shared sweep's output is a bucket).
    pub(super) out: Option<OutDir>,
    pub(super) bucket: Option<Bucket>,
    /// A worker of a shared sweep: its claims, its cap, its ending.
    pub(super) sweep: Option<SweepWorker>,
}

impl Opened {
    /// Where the run's documents go.
    pub(super) fn documents(&self) -> super::bucket::Documents<'_> {
        super::bucket::Documents {
            out: self.out.as_ref(),
            bucket: self.bucket.as_ref(),
        }
    }
}

impl Origin {
    pub(super) async fn find(
        request: &Request,
        last: Option<LastRun>,
        plan: &Plan,
        stderr: &mut dyn Write,
    ) -> Result<Origin, CommandFailure> {
        match &request.place.database {
            Some(_) if !plan.choices.is_empty() => Err(CommandFailure::new(
                Exit::Usage,
                "steps with `only:` choose their parents from one run folder's reviews; a shared sweep (--state) cannot use them yet",
            )
            .hint("run this manifest without --state, or remove `only:`; nothing was written or sent")),
            Some(url) => Ok(Origin::Sweep(Registered::register(request, url, plan, stderr).await?)),
            None => {
                let recorded = last.as_ref().and_then(|r| r.settings.clone()).unwrap_or_default();
                Ok(Origin::Folder { last, recorded })
            }
        }
    }

    pub(super) fn recorded_settings(&self) -> &RecordedSettings {
        match self {
            Origin::Folder { recorded, .. } => recorded,
            Origin::Sweep(r) => &r.recorded,
        }
    }

    /// The cap recorded (the sweep's, or the folder's last run's).
    pub(super) fn recorded_cap(&self) -> Option<Money> {
        match self {
            Origin::Folder { last, .. } => last.as_ref().and_then(|r| r.cap).map(Money::from_micro_cents),
            Origin::Sweep(r) => r.sweep.cap,
        }
    }

    /// Whose folder this is, and whether the cap can run anything: before anything is written.
    pub(super) fn check(
        &self,
        request: &Request,
        settled: &Settled,
        plan: &Plan,
        log_file: Option<&Path>,
    ) -> Result<(), CommandFailure> {
        if let Origin::Folder { last, .. } = self {
            super::folder::check(request, last.as_ref(), log_file)?;
            if let Some(cap) = settled.cap.amount()
                && last.is_none()
            {
                cap_can_run_a_job(cap, plan, &Replayed::default())?;
            }
        }
        Ok(())
    }

    pub(super) async fn open(
        self,
        request: &Request,
        settled: &Settled,
        plan: &mut Plan,
        bucket: Option<Bucket>,
        stderr: &mut dyn Write,
    ) -> Result<Opened, CommandFailure> {
        match self {
            Origin::Folder { .. } => open_folder(request, settled, plan, bucket, stderr).await,
            Origin::Sweep(registered) => {
                // A shared sweep's folder is shared by its workers (none when the output is a bucket).
                let out = match bucket {
                    Some(_) => None,
                    None => Some(out_dir(&request.place.out, true)?),
                };
                if let Some(out) = &out {
                    crate::commands::state::write_marker(out, &registered.sweep, &registered.url, stderr);
                }
                let (store, history, worker) = registered.open(request, plan).await?;
                let videos = videos_for(bucket.as_ref(), out.as_ref(), store.clone()).await?;
                Ok(Opened {
                    store,
                    history,
                    run_id: worker.run_id(),
                    videos,
                    // A worker checks the videos of the jobs it claims, when it claims them.
                    files_ok: vec![false; plan.jobs.len()],
                    out,
                    bucket,
                    sweep: Some(worker),
                })
            }
        }
    }
}

pub(super) fn out_dir(path: &Path, shared: bool) -> Result<OutDir, CommandFailure> {
    let opened = if shared {
        OutDir::open_shared(path)
    } else {
        OutDir::open(path)
    };
    opened.map_err(|e| {
        let exit = match e {
            // A folder refused: a link where the run writes, or another run's (in use).
            crate::output::folder::OutDirError::Symlink { .. } | crate::output::folder::OutDirError::Locked { .. } => {
                Exit::Invalid
            }
            _ => Exit::Failure,
        };
        fail(&e, e.hint(), exit)
    })
}

/// A run of its own: the folder (locked), its journal replayed (repaired first when asked), the
/// manifest copied in, and the recorded videos checked.
async fn open_folder(
    request: &Request,
    settled: &Settled,
    plan: &mut Plan,
    bucket: Option<Bucket>,
    stderr: &mut dyn Write,
) -> Result<Opened, CommandFailure> {
    let out = out_dir(&request.place.out, false)?;
    let journal_path = out.path(JOURNAL);
    if request.folder.repair_journal && journal_path.exists() {
        let r = journal::repair(&journal_path).map_err(|e| fail(&e, e.hint(), Exit::Failure))?;
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
    let (store, history, recovery) =
        LocalRunStore::open(&journal_path).map_err(|e| fail(&e, e.hint(), Exit::Failure))?;
    if recovery.torn_tail_bytes > 0 {
        let _ = writeln!(
            stderr,
            "note: the journal's last line was cut short ({} bytes, from an interrupted write) and was dropped",
            recovery.torn_tail_bytes
        );
    }
    // Steps with `only:` run for the parents this folder's reviews select, and for those begun.
    let chosen = crate::review::verdicts::choose(plan, Some(&request.place.out), &history).map_err(|e| {
        fail(
            &e,
            "fix or move reviews.jsonl (kling-batch review writes it), then rerun",
            Exit::Invalid,
        )
    })?;
    for line in crate::review::verdicts::describe(&chosen) {
        let _ = writeln!(stderr, "{line}");
    }
    if let Some(cap) = settled.cap.amount() {
        cap_can_run_a_job(cap, plan, &history)?;
    }
    let store: Arc<dyn RunStore> = Arc::new(store);
    let run_id = history.run_id.clone().unwrap_or_else(new_run_id);
    copy_manifest(&out, &request.manifest, stderr);
    if !history.jobs.is_empty() {
        let resumed = plan
            .jobs
            .iter()
            .filter(|j| history.jobs.contains_key(j.id.as_str()))
            .count();
        let _ = writeln!(
            stderr,
            "resuming {}: {resumed} of {} jobs seen before",
            out.root().display(),
            plan.jobs.len()
        );
    }
    let videos: Arc<dyn VideoStore> = match &bucket {
        Some(bucket) => {
            let videos = crate::output::bucket_videos::BucketVideos::open(bucket.clone(), Arc::clone(&store))
                .await
                .map_err(super::bucket::failure)?;
            abort_open_uploads(&videos, &history, stderr).await;
            Arc::new(videos)
        }
        None => Arc::new(LocalVideos::new(out.root())),
    };
    let files_ok = verify_files(plan, &history, videos.as_ref());
    Ok(Opened {
        store,
        history,
        run_id,
        videos,
        files_ok,
        out: Some(out),
        bucket,
        sweep: None,
    })
}

/// Where a shared sweep's videos go: the bucket (its uploads recorded in `store`), else the
/// shared output folder.
async fn videos_for(
    bucket: Option<&Bucket>,
    out: Option<&OutDir>,
    store: Arc<dyn RunStore>,
) -> Result<Arc<dyn VideoStore>, CommandFailure> {
    match (bucket, out) {
        (Some(bucket), _) => Ok(Arc::new(
            crate::output::bucket_videos::BucketVideos::open(bucket.clone(), store)
                .await
                .map_err(super::bucket::failure)?,
        )),
        (None, Some(out)) => Ok(Arc::new(LocalVideos::new(out.root()))),
        (None, None) => Err(fail("no place for the videos", "", Exit::Failure)),
    }
}

/// Uploads a killed run left open are aborted before anything else: no orphaned parts.
async fn abort_open_uploads(
    videos: &crate::output::bucket_videos::BucketVideos,
    history: &Replayed,
    stderr: &mut dyn Write,
) {
    let open: Vec<OpenUpload> = history
        .jobs
        .iter()
        .flat_map(|(job, f)| {
            f.open_uploads().iter().map(move |(o, id)| OpenUpload {
                job: job.clone(),
                object: o.clone(),
                upload_id: id.clone(),
                fence: None,
            })
        })
        .collect();
    let (aborted, problems) = videos.abort_open_uploads(&open).await;
    if aborted > 0 {
        let _ = writeln!(stderr, "aborted {aborted} unfinished upload(s) of an earlier run");
    }
    for problem in problems {
        let _ = writeln!(stderr, "warning: an unfinished upload could not be aborted: {problem}");
    }
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
fn verify_files(plan: &Plan, history: &Replayed, videos: &dyn VideoStore) -> Vec<bool> {
    plan.jobs
        .iter()
        .map(|job| {
            history
                .jobs
                .get(job.id.as_str())
                .and_then(|h| h.video.as_ref())
                .is_some_and(|v| videos.present(v))
        })
        .collect()
}
