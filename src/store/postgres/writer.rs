//! The `RunStore` on PostgreSQL, as a worker's run sees it: a handle that sends records to one
//! writer task (`commit`), which commits them in groups — fenced, compare-and-set, each group
//! once (see `commit`). The handle also keeps what the writer needs of every job as committed
//! (`Held`: its amounts and what its state is read from), and the jobs whose records the database
//! refused as stale (`take_lost`).

use super::Conn;
use super::changes::{Held, Holdings, hold};
use super::commit::{Message, Writer, closed};
use crate::journal::{JobFacts, Record, WriteError};
use crate::plan::JobId;
use crate::store::{Fence, RunStore};
use futures::FutureExt;
use futures::future::BoxFuture;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

#[derive(Debug)]
pub struct PgRunStore {
    sender: mpsc::UnboundedSender<Message>,
    /// Every job as committed, by its index in the plan: the writer's, shared for `learn`.
    held: Arc<Holdings>,
    /// Each job id's index in the plan.
    index: Arc<HashMap<JobId, i32>>,
    /// Jobs whose records the database refused as stale since the last look (`take_lost`).
    lost: Arc<Mutex<HashSet<usize>>>,
}

impl PgRunStore {
    /// Opens sweep `sweep` for this worker: replays its records (on `conn`, which then becomes
    /// the writer's own connection) and starts the writer with the facts replayed. Returns the
    /// store and its replay, as the local journal's `open` does.
    pub async fn open(
        mut conn: Conn,
        sweep: &super::Sweep,
        worker: String,
        plan: &crate::plan::Plan,
        outage: Duration,
    ) -> Result<(PgRunStore, crate::journal::Replayed), super::StateError> {
        let history = sweep.replay(conn.get().await?).await?;
        let index: HashMap<JobId, i32> = plan
            .jobs
            .iter()
            .enumerate()
            .map(|(i, j)| (j.id.clone(), super::sweep::idx(i)))
            .collect();
        let store = PgRunStore::start(conn, sweep.id, worker, &history.jobs, index, outage);
        Ok((store, history))
    }

    /// Starts the writer for sweep `sweep` on its own connection. `facts` are the jobs' facts as
    /// replayed; `index` each job id's index in the plan.
    pub fn start(
        conn: Conn,
        sweep: i64,
        worker: String,
        facts: &HashMap<String, JobFacts>,
        index: HashMap<JobId, i32>,
        outage: Duration,
    ) -> PgRunStore {
        let (sender, receiver) = mpsc::unbounded_channel();
        let mut held = vec![Held::default(); index.len()];
        for (job, f) in facts {
            if let Some(&idx) = index.get(job.as_str()) {
                hold(&mut held, idx, f);
            }
        }
        let held = Arc::new(Mutex::new(held));
        let index = Arc::new(index);
        let lost = Arc::new(Mutex::new(HashSet::new()));
        let writer = Writer::new(
            conn,
            sweep,
            worker,
            Arc::clone(&held),
            Arc::clone(&lost),
            Arc::clone(&index),
            outage,
        );
        tokio::spawn(writer.run(receiver));
        PgRunStore {
            sender,
            held,
            index,
            lost,
        }
    }

    /// Takes the facts of jobs just claimed from every record the database has of them (another
    /// worker's, read at the claim): what this worker knew of them before is stale.
    pub fn learn(&self, records: &[Record]) {
        let mut fresh: HashMap<i32, JobFacts> = HashMap::new();
        for record in records {
            if let Some(&idx) = record.job().and_then(|job| self.index.get(job)) {
                fresh.entry(idx).or_default().apply(record);
            }
        }
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        for (idx, f) in fresh {
            hold(&mut held, idx, &f);
        }
    }

    /// Jobs whose records were refused as stale since the last call.
    pub fn take_lost(&self) -> HashSet<usize> {
        std::mem::take(&mut *self.lost.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl RunStore for PgRunStore {
    fn append(&self, record: &Record, fence: Option<Fence>) {
        let _ = self.sender.send(Message::Record(Box::new(record.clone()), fence, None));
    }

    fn append_durable<'a>(&'a self, record: &'a Record, fence: Option<Fence>) -> BoxFuture<'a, Result<(), WriteError>> {
        let (ack, done) = oneshot::channel();
        let sent = self
            .sender
            .send(Message::Record(Box::new(record.clone()), fence, Some(ack)));
        async move {
            sent.map_err(|_| closed())?;
            done.await.unwrap_or_else(|_| Err(closed()))
        }
        .boxed()
    }

    fn close(&self) -> BoxFuture<'_, Result<(), WriteError>> {
        let (ack, done) = oneshot::channel();
        let sent = self.sender.send(Message::Close(ack));
        async move {
            sent.map_err(|_| closed())?;
            done.await.unwrap_or_else(|_| Err(closed()))
        }
        .boxed()
    }
}
