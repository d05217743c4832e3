//! The compare-and-set writes of a group's commit (`commit`): a job's change from the values this
//! worker knows to its new ones, applied only where the database still holds the old ones; the
//! state a job's facts put it in for claims; and why a commit did not go through.

use super::StateError;
use crate::journal::{JobFacts, JobState, Phase, Record, StoredVideo, WriteError};
use crate::store::Fence;
use crate::util::money::Money;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use tokio::sync::oneshot;

/// Answers a durable append once its group is committed (or refused).
pub(super) type Ack = oneshot::Sender<Result<(), WriteError>>;

/// The state a job's facts put it in, for claims: from the journal's one reading of them
/// (`JobFacts::state`), as `status` and a resume read them. A paid video not stored is work for
/// the next claim (`completed`), never `failed`.
pub(super) fn state_of(facts: &JobFacts) -> &'static str {
    match facts.state(true) {
        JobState::Done { .. } => "finished",
        JobState::Failed { .. } => "failed",
        JobState::Downloading { .. } => "completed",
        _ if facts.cost.is_some() => "completed",
        _ => "open",
    }
}

/// What the writer keeps of a job between groups: the amounts it compares and sets, and what the
/// job's state is read from — whether it has a key, a task, a stored video, not the strings
/// themselves. A worker of a 100,000-job sweep holds one per job (32 bytes, where the job's full
/// facts with its key, URL and times took about ten times that).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Held {
    phase: Option<Phase>,
    reserved: Money,
    cost: Option<Money>,
    key: bool,
    task: bool,
    video: bool,
}

impl Held {
    pub(super) fn of(facts: &JobFacts) -> Held {
        Held {
            phase: facts.phase,
            reserved: facts.reserved,
            cost: facts.cost,
            key: facts.key.is_some(),
            task: facts.task_id.is_some(),
            video: facts.video.is_some(),
        }
    }

    /// Facts that read as this job's state and amounts, to fold the next record into: empty
    /// strings where only presence counts (`JobFacts::apply` writes them, never reads them).
    pub(super) fn facts(self) -> JobFacts {
        let mut facts = JobFacts::default();
        facts.phase = self.phase;
        facts.reserved = self.reserved;
        facts.cost = self.cost;
        facts.key = self.key.then(String::new);
        facts.task_id = self.task.then(String::new);
        facts.video = self.video.then(StoredVideo::default);
        facts
    }
}

/// Every job's `Held`, by its index in the plan.
pub(super) type Holdings = Mutex<Vec<Held>>;

/// Keeps what the writer needs of job `idx`'s facts (an index outside the plan is ignored).
pub(super) fn hold(held: &mut [Held], idx: i32, facts: &JobFacts) {
    if let Some(slot) = usize::try_from(idx).ok().and_then(|i| held.get_mut(i)) {
        *slot = Held::of(facts);
    }
}

pub(super) fn micro(m: crate::util::money::Money) -> i64 {
    i64::try_from(m.micro_cents()).unwrap_or(i64::MAX)
}

pub(super) fn fence_value(f: Fence) -> i64 {
    i64::try_from(f.0).unwrap_or(i64::MAX)
}

/// One job's change within a group, as written: from the values the database must still hold to
/// the new ones.
#[derive(Debug, Clone, Copy)]
pub(super) struct Change {
    pub(super) idx: i32,
    pub(super) fence: i64,
    pub(super) old_reserved: i64,
    pub(super) old_cost: i64,
    pub(super) reserved: i64,
    pub(super) cost: i64,
    pub(super) state: &'static str,
}

/// Why a commit did not go through.
pub(super) enum CommitError {
    /// The database could not be reached or answered an error: try the group again.
    Db(StateError),
    /// The database's values for these jobs are not this worker's: their records are refused
    /// and the group is committed again without them.
    Diverged(Vec<i32>),
}

impl From<StateError> for CommitError {
    fn from(e: StateError) -> CommitError {
        CommitError::Db(e)
    }
}

impl From<tokio_postgres::Error> for CommitError {
    fn from(e: tokio_postgres::Error) -> CommitError {
        CommitError::Db(e.into())
    }
}

/// A job's facts before the next record: as the group has them so far, else as committed.
pub(super) fn before_of(held: &Holdings, scratch: &HashMap<i32, JobFacts>, idx: i32) -> JobFacts {
    match scratch.get(&idx) {
        Some(f) => f.clone(),
        None => held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(usize::try_from(idx).unwrap_or(usize::MAX))
            .copied()
            .unwrap_or_default()
            .facts(),
    }
}

pub(super) type Pending = (Record, Option<Fence>, Option<Ack>);

/// Writes the jobs' changes and the sweep's totals for `pending`, in one statement; a job whose
/// values in the database are not the ones this worker changed from is reported, and nothing of
/// the group stays (the caller's transaction is dropped).
pub(super) async fn flush(
    tx: &tokio_postgres::Transaction<'_>,
    totals: &tokio_postgres::Statement,
    sweep: i64,
    pending: &mut Vec<Change>,
) -> Result<(), CommitError> {
    if pending.is_empty() {
        return Ok(());
    }
    let col = |f: fn(&Change) -> i64| pending.iter().map(f).collect::<Vec<i64>>();
    let idxs: Vec<i32> = pending.iter().map(|p| p.idx).collect();
    let fences = col(|p| p.fence);
    let old_reserved = col(|p| p.old_reserved);
    let old_cost = col(|p| p.old_cost);
    let reserved = col(|p| p.reserved);
    let costs = col(|p| p.cost);
    let states: Vec<&str> = pending.iter().map(|p| p.state).collect();
    let rows = tx
        .query(
            totals,
            &[
                &sweep,
                &idxs,
                &fences,
                &old_reserved,
                &old_cost,
                &reserved,
                &costs,
                &states,
            ],
        )
        .await?;
    let written: HashSet<i32> = rows.iter().map(|r| r.get::<_, i32>(0)).collect();
    let missed: Vec<i32> = idxs.iter().copied().filter(|i| !written.contains(i)).collect();
    pending.clear();
    if missed.is_empty() {
        Ok(())
    } else {
        Err(CommitError::Diverged(missed))
    }
}

/// After a reserve checked against the cap moved the sweep's reserve: the job's own values,
/// compare and set (the sweep's totals are not moved again).
pub(super) async fn set_job(tx: &tokio_postgres::Transaction<'_>, sweep: i64, p: Change) -> Result<(), CommitError> {
    let n = tx
        .execute(
            "update kb_jobs set reserved = $3, cost = $4, state = case when state = 'finished' then state else $5 end \
             where sweep = $1 and idx = $2 and fence = $6 and reserved = $7 and cost = $8",
            &[
                &sweep,
                &p.idx,
                &p.reserved,
                &p.cost,
                &p.state,
                &p.fence,
                &p.old_reserved,
                &p.old_cost,
            ],
        )
        .await?;
    if n == 1 {
        Ok(())
    } else {
        Err(CommitError::Diverged(vec![p.idx]))
    }
}
