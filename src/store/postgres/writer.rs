//! The `RunStore` on PostgreSQL, as a worker's run sees it: a handle that sends records to one
//! writer task (`commit`), which commits them in groups — fenced, compare-and-set, each group
//! once (see `commit`). The handle also keeps the facts of every job as committed, and the jobs
//! whose records the database refused as stale (`take_lost`).

use super::Conn;
use super::commit::{Message, Writer, closed};
use crate::journal::{JobFacts, Record, WriteError};
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
    /// Facts of every job as committed: the writer's, shared for reading.
    facts: Arc<Mutex<HashMap<String, JobFacts>>>,
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
        let index: HashMap<String, i32> = plan
            .jobs
            .iter()
            .enumerate()
            .map(|(i, j)| (j.id.to_string(), i32::try_from(i).unwrap_or(i32::MAX)))
            .collect();
        let store = PgRunStore::start(conn, sweep.id, worker, history.jobs.clone(), index, outage);
        Ok((store, history))
    }

    /// Starts the writer for sweep `sweep` on its own connection. `facts` are the jobs' facts as
    /// replayed; `index` each job id's index in the plan.
    pub fn start(
        conn: Conn,
        sweep: i64,
        worker: String,
        facts: HashMap<String, JobFacts>,
        index: HashMap<String, i32>,
        outage: Duration,
    ) -> PgRunStore {
        let (sender, receiver) = mpsc::unbounded_channel();
        let facts = Arc::new(Mutex::new(facts));
        let lost = Arc::new(Mutex::new(HashSet::new()));
        let writer = Writer::new(
            conn,
            sweep,
            worker,
            Arc::clone(&facts),
            Arc::clone(&lost),
            index,
            outage,
        );
        tokio::spawn(writer.run(receiver));
        PgRunStore { sender, facts, lost }
    }

    /// Takes the facts of jobs just claimed from every record the database has of them (another
    /// worker's, read at the claim): what this worker knew of them before is stale.
    pub fn learn(&self, records: &[Record]) {
        let mut fresh: HashMap<String, JobFacts> = HashMap::new();
        for record in records {
            if let Some(job) = record.job() {
                fresh.entry(job.to_string()).or_default().apply(record);
            }
        }
        let mut facts = self.facts.lock().unwrap_or_else(|e| e.into_inner());
        facts.extend(fresh);
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
