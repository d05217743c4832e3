//! `run --state postgres://…`: this process is one worker of a sweep whose state lives in
//! PostgreSQL — the store-specific steps of the one run pipeline (`command`). It registers or
//! joins the sweep, opens the store with its replay, settles the sweep's one cap with the
//! database, gives failed jobs back when asked, claims jobs and renews its leases while the run
//! goes (the same dispatcher and executor; records go to the database, an intent committed — and
//! checked against the sweep's cap — before its POST), and at its end writes results.csv,
//! report.html and summary.json for the whole sweep, from the database.

use super::context::{fail, new_run_id};
use super::finish::Ending;
use super::request::Request;
use super::resume::{ResumeSettings, resume_command};
use super::settings::{Cap, Settled};
use crate::client::Pacer;
use crate::commands::state::failure;
use crate::error::{CommandFailure, Exit};
use crate::journal::{FailureKind, JobState, RecordedSettings, Replayed};
use crate::output::videos::VideoStore;
use crate::plan::Plan;
use crate::report::RunStatus;
use crate::runner::sweep::SharedSweep;
use crate::runner::{Dispatcher, JobPhase, JobRun, StopReason};
use crate::store::postgres::{CapChange, Conn, PgRunStore, Sweep};
use crate::util::money::Money;
use std::io::Write;
use std::sync::Arc;

/// The sweep, registered (or found) in the database, with what it recorded.
pub(super) struct Registered {
    pub(super) url: String,
    client: tokio_postgres::Client,
    pub(super) sweep: Sweep,
    pub(super) recorded: RecordedSettings,
}

/// This worker of the sweep: from its store's opening to its end.
pub(super) struct SweepWorker {
    url: String,
    client: Option<tokio_postgres::Client>,
    sweep: Sweep,
    worker: String,
    store: Arc<PgRunStore>,
    /// What the whole sweep has left to submit: its estimate, and how many jobs.
    left: (Money, usize),
    /// Once the run has begun: the claims, heartbeats and the connection they use.
    shared: Option<Arc<SharedSweep>>,
}

impl Registered {
    /// Registers the sweep (or joins it): named by `--run`, else by a bucket's address, else by
    /// the output folder's absolute path. A different plan under the same name is refused.
    pub(super) async fn register(
        request: &Request,
        url: &str,
        plan: &Plan,
        stderr: &mut dyn Write,
    ) -> Result<Registered, CommandFailure> {
        let mut client = crate::commands::state::connect(url, request.state_deadline()).await?;
        let place = &request.place;
        // The folder's own marker names its sweep, whatever path it is reached by.
        let marker = match place.bucket {
            Some(_) => None,
            None => crate::commands::state::read_marker(&place.out),
        };
        let name = match (&place.bucket, &place.run_name, &marker) {
            (Some(url), None, _) => url.to_string(),
            (None, None, Some(marker)) => marker.sweep.clone(),
            _ => crate::commands::state::sweep_name(place.run_name.as_deref(), &place.out),
        };
        let run_id = match &marker {
            Some(marker) => marked_run_id(request, url, marker, &name, &client, stderr).await?,
            None => new_run_id(),
        };
        let sweep = Sweep::register(
            &mut client,
            &name,
            plan,
            &run_id,
            &request.manifest.display().to_string(),
        )
        .await
        .map_err(failure)?;
        if let Some(recorded) = marker.as_ref().and_then(|m| m.run_id.as_deref())
            && recorded != sweep.run_id
        {
            return Err(fail(
                format!(
                    "{} is the folder of sweep `{name}` with run id {recorded}, but the state database's sweep of that name has run id {}: another sweep",
                    place.out.display(),
                    sweep.run_id
                ),
                "give this worker another --out (or the --state the folder's sweep.json names); nothing was sent",
                Exit::Invalid,
            ));
        }
        let _ = writeln!(
            stderr,
            "{} sweep `{}` in the state database",
            if sweep.created { "registered" } else { "joining" },
            sweep.name
        );
        Ok(Registered {
            url: url.to_string(),
            client,
            recorded: sweep.settings.clone().unwrap_or_default(),
            sweep,
        })
    }

    /// The store (on a connection of its own), the sweep's replay, and this worker.
    pub(super) async fn open(
        self,
        request: &Request,
        plan: &Plan,
    ) -> Result<(Arc<PgRunStore>, Replayed, SweepWorker), CommandFailure> {
        let worker = format!("{}-{}-{}", host_name(), std::process::id(), &new_run_id()[..6]);
        let deadline = request.state_deadline();
        let conn = Conn::new(
            &self.url,
            crate::commands::state::connect(&self.url, deadline).await?,
            deadline,
        );
        let (store, history) = PgRunStore::open(conn, &self.sweep, worker.clone(), plan, request.state_outage)
            .await
            .map_err(failure)?;
        let store = Arc::new(store);
        let this = SweepWorker {
            url: self.url,
            client: Some(self.client),
            sweep: self.sweep,
            worker,
            store: Arc::clone(&store),
            left: (Money::ZERO, 0),
            shared: None,
        };
        Ok((store, history, this))
    }
}

impl SweepWorker {
    /// The sweep's run id, which every worker's records carry.
    pub(super) fn run_id(&self) -> String {
        self.sweep.run_id.clone()
    }

    fn client(&self) -> Result<&tokio_postgres::Client, CommandFailure> {
        self.client
            .as_ref()
            .ok_or_else(|| fail("the sweep's connection is in use by the run", "", Exit::Failure))
    }

    /// The sweep has one cap. A worker asking for none keeps it; a lower one lowers it for all; a
    /// higher one (or none at all) is refused unless `--raise-cap` says so. Settled before
    /// anything of this worker changes the sweep; what the whole sweep has left is its estimate.
    pub(super) async fn settle_cap(
        &mut self,
        request: &Request,
        settled: &Settled,
        plan: &Plan,
        history: &Replayed,
        reservations: &[Money],
        stderr: &mut dyn Write,
    ) -> Result<Option<Money>, CommandFailure> {
        // (Without making every job's run state: a 100,000-job sweep's would be tens of megabytes.)
        let mut left = (Money::ZERO, 0usize);
        for (job, reserve) in plan.jobs.iter().zip(reservations) {
            if history
                .jobs
                .get(job.id.as_str())
                .is_none_or(|h| h.state(false) == JobState::Queued)
            {
                left = (left.0.saturating_add(*reserve), left.1 + 1);
            }
        }
        self.left = left;
        let estimate = history.spent.saturating_add(history.reserved).saturating_add(left.0);
        let fallback = match settled.cap {
            Cap::Default => Some(estimate),
            other => other.amount(),
        };
        let asked = request.flags.cap.is_some().then(|| settled.cap.amount());
        let Some(client) = self.client.as_mut() else {
            return Err(fail("the sweep's connection is in use by the run", "", Exit::Failure));
        };
        let change = self
            .sweep
            .settle_cap(client, asked, fallback, request.raise_cap)
            .await
            .map_err(failure)?;
        let show = |c: Option<Money>| c.map_or_else(|| "no cap".to_string(), |c| c.to_string());
        match change {
            CapChange::Refused { current, asked } => {
                return Err(CommandFailure::new(
                    Exit::Usage,
                    format!(
                        "sweep `{}` has a spend cap of {}; --max-spend {} would raise it for every worker",
                        self.sweep.name,
                        show(current),
                        asked.map_or_else(|| "none".to_string(), |c| format!("{:.2}", c.usd()))
                    ),
                )
                .hint("add --raise-cap to raise the sweep's cap on purpose, or leave out --max-spend to keep it; nothing was spent"));
            }
            CapChange::BelowCommitted {
                current,
                asked,
                spent,
                held,
            } => {
                let committed = spent.saturating_add(held);
                return Err(CommandFailure::new(
                    Exit::Usage,
                    format!(
                        "sweep `{}` has billed {spent} and holds {held} for tasks in flight ({committed} committed); a spend cap of {asked} cannot take that back",
                        self.sweep.name
                    ),
                )
                .hint(format!(
                    "--max-spend {:.2} stops it where it stands (the tasks in flight may still bill up to {held}); the cap stays {}; nothing was spent",
                    committed.usd_ceil_cents(),
                    show(current)
                )));
            }
            CapChange::Set(Some(cap)) if settled.cap == Cap::Default => {
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
        Ok(change.cap())
    }

    /// What the whole sweep has left to submit: its estimate, and how many jobs.
    pub(super) fn left(&self) -> (Money, usize) {
        self.left
    }

    /// Before the run: failed jobs given back when asked (`--retry-failed`, a raised
    /// `--max-attempts`), paid videos not in place given back to be fetched, and the limits
    /// recorded with the sweep.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn prepare(
        &self,
        request: &Request,
        settled: &Settled,
        resume: &ResumeSettings,
        plan: &Plan,
        history: &Replayed,
        videos: &dyn VideoStore,
        stderr: &mut dyn Write,
    ) -> Result<(), CommandFailure> {
        let client = self.client()?;
        let reopen = to_reopen(plan, history, request.retry_failed.as_deref(), settled.max_attempts);
        let reopened = self.sweep.reopen(client, &reopen).await.map_err(failure)?;
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
        let given_back = self.sweep.reopen_missing(client, &missing).await.map_err(failure)?;
        if given_back > 0 {
            let _ = writeln!(
                stderr,
                "{given_back} paid video(s) recorded as stored are not in place: they are fetched again"
            );
        }
        self.sweep
            .record_limits(client, settled.rate, &resume.to_recorded())
            .await
            .map_err(failure)
    }

    /// Joins the sweep as a worker: its claims and heartbeats begin, and a 429 it meets pauses
    /// the others too.
    pub(super) async fn start(
        &mut self,
        request: &Request,
        settled: &Settled,
        pacer: &Arc<Pacer>,
        stderr: &mut dyn Write,
    ) -> Result<Arc<SharedSweep>, CommandFailure> {
        let client = self
            .client
            .take()
            .ok_or_else(|| fail("the sweep was started twice", "", Exit::Failure))?;
        self.sweep
            .join(&client, &self.worker, &host_name())
            .await
            .map_err(failure)?;
        let shared = Arc::new(SharedSweep {
            sweep: self.sweep.clone(),
            worker: self.worker.clone(),
            lease: request.lease,
            rate: settled.rate,
            conn: tokio::sync::Mutex::new(Conn::new(&self.url, client, request.state_deadline())),
            store: Arc::clone(&self.store),
            pacer: Arc::clone(pacer),
        });
        let weak = Arc::downgrade(&shared);
        pacer.set_pause_hook(Box::new(move |wait| {
            if let Some(shared) = weak.upgrade() {
                tokio::spawn(async move { shared.pause(wait).await });
            }
        }));
        let _ = writeln!(stderr, "worker {} of sweep `{}`", self.worker, self.sweep.name);
        self.shared = Some(Arc::clone(&shared));
        Ok(shared)
    }

    /// After the run: what this worker did, its jobs given back at once, and the whole sweep as
    /// the database has it (results.csv, report.html, summary.json; other workers' videos are
    /// in the store too).
    pub(super) async fn finish(
        self,
        ending: &Ending<'_>,
        documents: &super::bucket::Documents<'_>,
        videos: &Arc<dyn VideoStore>,
        dispatcher: Dispatcher,
        stderr: &mut dyn Write,
    ) -> Exit {
        let plan = ending.plan;
        // What this worker did, taken before its run state is let go (the whole sweep's view
        // below is as large again).
        let stop = dispatcher.stop_reason().cloned();
        let stop_exit = stop
            .as_ref()
            .filter(|s| **s != StopReason::MaxRuntime)
            .map(|s| super::finish::exit_code(Some(s), dispatcher.jobs()));
        let mine = dispatcher
            .jobs()
            .iter()
            .filter(|j| j.phase() == JobPhase::Done && j.facts.submitted_at.is_some())
            .count();
        let mine_spent = dispatcher.ledger().spent();
        let lost = dispatcher.jobs_lost();
        drop(dispatcher);
        let Some(shared) = self.shared else {
            return stop_exit.unwrap_or(Exit::Failure);
        };
        // Whatever this worker still holds goes back to the sweep at once.
        {
            let mut conn = shared.conn.lock().await;
            if let Ok(client) = conn.get().await
                && let Err(e) = self.sweep.leave(client, &self.worker).await
            {
                let _ = writeln!(stderr, "warning: could not give this worker's jobs back: {e}");
            }
        }
        videos.refresh().await;
        let whole = {
            let mut conn = shared.conn.lock().await;
            match conn.get().await {
                Ok(client) => self.sweep.replay(client).await.ok(),
                Err(_) => None,
            }
        };
        let Some(history) = whole else {
            let _ = writeln!(
                stderr,
                "the state database could not be read at the end: results.csv and report.html were not rewritten (`kling-batch report --state …` writes them)"
            );
            if let Some(stop) = &stop {
                let _ = writeln!(stderr, "this worker {}", stopped_because(stop));
            }
            let _ = writeln!(stderr, "{}", resume_line(ending));
            return stop_exit.unwrap_or(Exit::TimedOut);
        };
        // One set of jobs at rest, the replay's facts moved into it, for the status and the
        // documents alike: a second set for the status (`RunStatus::of_journal`) was the peak of
        // a 100,000-job worker (59 MB of jobs and 22 MB of copied facts on top of the replay).
        let removed = crate::report::removed_paid(plan, &history);
        let manifest = history.manifest.clone();
        let spend = crate::report::Spend {
            spent: history.spent,
            reserved: history.reserved,
            cap: history.cap,
        };
        let (jobs, others) = at_rest(plan, history, videos.as_ref());
        let status = RunStatus::of_rest(plan, manifest, &jobs, spend, others);
        let exit = stop_exit.unwrap_or_else(|| super::finish::exit_code(None, &jobs));
        let elapsed = ending.started.elapsed();
        let text = super::finish::summary_json(&status, exit, stop.as_ref(), elapsed, Some(&self.sweep.name));
        ending
            .write_documents(documents, &jobs, &removed, &status, &text, stderr)
            .await;
        let _ = writeln!(
            stderr,
            "this worker: {mine} job(s) completed, {mine_spent} spent, in {:.1} s",
            elapsed.as_secs_f64()
        );
        if let Some(stop) = &stop {
            let _ = writeln!(stderr, "this worker {}", stopped_because(stop));
        }
        if lost > 0 {
            let _ = writeln!(
                stderr,
                "this worker: {lost} job(s) taken over by other workers after its lease ran out (it was paused or cut off from the database); its work on them stopped, and nothing it did after that was recorded"
            );
        }
        let _ = write!(stderr, "the sweep: {}", status.render(&self.sweep.name));
        if !status.finished {
            let _ = writeln!(stderr, "{}", resume_line(ending));
        }
        exit
    }
}

/// The run id a folder's marker records for its sweep, once the marker is checked against what
/// this worker was given: a database that has the sweep (by name and run id — one database may
/// be reached by several addresses, so the address is not compared), unless `--adopt-folder`
/// says to register it again. A sweep registered again keeps the recorded run id, so
/// every create it sends is a replay of the first one, never a second bill.
async fn marked_run_id(
    request: &Request,
    url: &str,
    marker: &crate::commands::state::SweepMarker,
    name: &str,
    client: &tokio_postgres::Client,
    stderr: &mut dyn Write,
) -> Result<String, CommandFailure> {
    let out = request.place.out.display();
    if request.place.run_name.as_deref().is_some_and(|n| n != marker.sweep) {
        return Err(fail(
            format!("{out} is the folder of sweep `{}`, not `{name}`", marker.sweep),
            &format!("leave out --run (or give --run {}), or another --out", marker.sweep),
            Exit::Invalid,
        ));
    }
    let known = Sweep::find(client, name).await.map_err(failure)?;
    let recorded = marker.run_id.clone();
    match (known, recorded) {
        (Some(sweep), _) => Ok(sweep.run_id),
        (None, recorded) if !request.folder.adopt_folder => Err(fail(
            format!(
                "the state database at {} has no sweep `{name}`, though {out}/sweep.json says the folder is that sweep's (registered in the database at {}, run id {}): the database may have been restored to before the sweep was registered, or it is another one",
                crate::store::postgres::redact(url),
                marker.state,
                recorded.as_deref().unwrap_or("not recorded")
            ),
            &format!(
                "if the sweep lives elsewhere, give --state {}; to register it again here under its recorded run id (every create then replays the first, nothing is billed twice) add --adopt-folder; nothing was sent",
                marker.state
            ),
            Exit::Invalid,
        )),
        (None, recorded) => {
            let run_id = recorded.unwrap_or_else(new_run_id);
            let _ = writeln!(
                stderr,
                "warning: the state database had no sweep `{name}`: registering it again under the run id its folder records ({run_id}, --adopt-folder); every create replays the first, and what the service did is learned again"
            );
            Ok(run_id)
        }
    }
}

/// Why a worker ended as it did, whatever the sweep's state.
fn stopped_because(stop: &StopReason) -> String {
    match stop {
        StopReason::CapReached { .. } => "stopped at the sweep's spend cap".to_string(),
        StopReason::Credits(m) => format!("stopped: the account is out of credits ({m})"),
        StopReason::Auth(m) => format!("stopped: the API key was refused ({m})"),
        StopReason::Interrupted => "interrupted; what it did is saved".to_string(),
        StopReason::MaxRuntime => "stopped submitting at --max-runtime".to_string(),
        StopReason::Local(m) => format!("stopped: {m}"),
    }
}

/// The line that says how to go on with the sweep.
fn resume_line(ending: &Ending<'_>) -> String {
    format!(
        "resume (or add workers) with: {}{}",
        resume_command(&ending.request.place, ending.resume),
        if ending.request.place.database_from_flag {
            ""
        } else {
            " (with the same KLING_BATCH_STATE)"
        },
    )
}

/// The failed jobs a worker started with `--retry-failed[=PATTERN]` (or a raised
/// `--max-attempts`) gives back to the sweep: the dispatcher's own rule.
fn to_reopen(plan: &Plan, history: &Replayed, retry_failed: Option<&str>, max_attempts: u32) -> Vec<usize> {
    plan.jobs
        .iter()
        .enumerate()
        .filter(|(_, job)| {
            let Some(facts) = history.jobs.get(job.id.as_str()) else {
                return false;
            };
            let Some(failure) = facts.failure() else {
                return false;
            };
            let asked = retry_failed.is_some_and(|p| failure.to_string().to_lowercase().contains(&p.to_lowercase()));
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

/// Jobs as the whole sweep's records show them (the facts moved, not copied), and how many jobs
/// the records name that the plan does not (removed from the manifest).
fn at_rest(plan: &Plan, mut history: Replayed, videos: &dyn VideoStore) -> (Vec<JobRun>, usize) {
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
    (jobs, history.jobs.len())
}
