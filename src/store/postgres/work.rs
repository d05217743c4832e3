//! A sweep's workers and their jobs: claims under fences, heartbeats that renew leases and bring
//! the sweep's totals, giving jobs back, the shared pause, and who is working.

use super::StateError;
use super::sweep::{Sweep, idx, millis};
use crate::journal::Record;
use crate::store::Fence;
use crate::util::money::Money;
use std::time::Duration;
use tokio_postgres::Client;

/// The sweep's spend, as every worker's records add up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SweepTotals {
    pub spent: Money,
    pub reserved: Money,
    pub cap: Option<Money>,
    /// Jobs not finished (neither stored, failed nor skipped).
    pub open: u64,
    /// Of those, jobs some worker holds a live lease on.
    pub leased: u64,
    /// Jobs a worker could claim now.
    pub claimable: u64,
    /// Until when everyone waits (a 429's `Retry-After`), as seconds from now.
    pub paused_for: Option<Duration>,
    /// Workers alive (a heartbeat younger than a lease), who share the rate.
    pub workers: u64,
}

/// A worker as the sweep knows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WorkerRow {
    pub worker: String,
    pub host: String,
    pub pid: i32,
    /// Jobs it holds a lease on now.
    pub jobs: i64,
    /// Creates and tasks it had in flight at its last heartbeat.
    pub in_flight: i32,
    pub seconds_since_heartbeat: f64,
    pub finished: bool,
}

/// Jobs a claim took, with every record they (and the jobs they continue) have so far.
#[derive(Debug, Clone, Default)]
pub struct Claimed {
    pub jobs: Vec<usize>,
    /// The fence of each claim, in the order of `jobs`.
    pub fences: Vec<Fence>,
    pub records: Vec<Record>,
    /// Jobs of the sweep not finished yet, after the claim (its own included).
    pub open: u64,
}

impl Sweep {
    /// Claims up to `n` jobs nobody holds (or whose holder's lease ran out), in plan order, a step
    /// only once its parent completed; returns them with the records they and their parents have.
    /// Each claim takes the job's next fence. A worker never claims a job it holds already (its
    /// heartbeat renews that lease): the fence moves only when the job changes hands, so a record
    /// refused for its fence always means another worker has the job.
    pub async fn claim(
        &self,
        client: &mut Client,
        worker: &str,
        n: usize,
        lease: Duration,
    ) -> Result<Claimed, StateError> {
        let tx = client.transaction().await?;
        let rows = tx
            .query(
                "with free as ( \
                   select j.idx from kb_jobs j left join kb_jobs p on p.sweep = j.sweep and p.idx = j.parent_idx \
                   where j.sweep = $1 and j.state in ('open', 'completed') \
                     and (j.owner is null or (j.lease_until < now() and j.owner <> $2)) \
                     and (j.parent_idx is null or p.state in ('completed', 'finished')) \
                   order by j.idx limit $3 for update of j skip locked) \
                 update kb_jobs k set owner = $2, lease_until = now() + $4 * interval '1 millisecond', fence = k.fence + 1 \
                 from free where k.sweep = $1 and k.idx = free.idx returning k.idx, k.job_id, k.parent_idx, k.fence",
                &[&self.id, &worker, &(n.min(100_000) as i64), &millis(lease)],
            )
            .await?;
        let mut claimed = Claimed::default();
        let mut names: Vec<String> = Vec::new();
        let mut taken: Vec<(usize, Fence)> = Vec::with_capacity(rows.len());
        for row in &rows {
            let i: i32 = row.get(0);
            let fence: i64 = row.get(3);
            taken.push((i.max(0) as usize, Fence(fence.max(0) as u64)));
            names.push(row.get(1));
        }
        taken.sort_unstable();
        claimed.jobs = taken.iter().map(|t| t.0).collect();
        claimed.fences = taken.iter().map(|t| t.1).collect();
        let parents: Vec<i32> = rows.iter().filter_map(|r| r.get::<_, Option<i32>>(2)).collect();
        if !parents.is_empty() {
            for row in tx
                .query(
                    "select job_id from kb_jobs where sweep = $1 and idx = any($2)",
                    &[&self.id, &parents],
                )
                .await?
            {
                names.push(row.get(0));
            }
        }
        if !names.is_empty() {
            for row in tx
                .query(
                    "select record from kb_records where sweep = $1 and job_id = any($2) order by seq",
                    &[&self.id, &names],
                )
                .await?
            {
                let text: &str = row.get(0);
                if let Ok(record) = serde_json::from_str::<Record>(text) {
                    claimed.records.push(record);
                }
            }
        }
        claimed.open = tx
            .query_one(
                "select count(*) from kb_jobs where sweep = $1 and state in ('open', 'completed')",
                &[&self.id],
            )
            .await?
            .get::<_, i64>(0)
            .max(0) as u64;
        tx.commit().await?;
        Ok(claimed)
    }

    /// Renews this worker's leases and its heartbeat; returns the jobs it still holds, each with
    /// the fence of its claim (a job claimed by another worker since is not among them).
    /// Renews the leases of the jobs this worker holds, and gives back those it is `done` with
    /// here (counted done, failed or skipped, whatever the sweep has of them): a job whose record
    /// never reached the sweep is then claimed again and finished, so the sweep always converges.
    /// Only jobs named `done` are given back — never one a claim in flight just took.
    pub async fn heartbeat(
        &self,
        client: &Client,
        worker: &str,
        lease: Duration,
        in_flight: usize,
        done: &[usize],
    ) -> Result<Vec<(usize, Fence)>, StateError> {
        let done: Vec<i32> = done.iter().map(|&i| idx(i)).collect();
        client
            .execute(
                "update kb_jobs set owner = null, lease_until = null \
                 where sweep = $1 and owner = $2 and state in ('open', 'completed') and idx = any($3)",
                &[&self.id, &worker, &done],
            )
            .await?;
        let rows = client
            .query(
                "update kb_jobs set lease_until = now() + $3 * interval '1 millisecond' \
                 where sweep = $1 and owner = $2 and state in ('open', 'completed') returning idx, fence",
                &[&self.id, &worker, &millis(lease)],
            )
            .await?;
        client
            .execute(
                "update kb_workers set heartbeat_at = now(), in_flight = $3 where sweep = $1 and worker = $2",
                &[&self.id, &worker, &idx(in_flight)],
            )
            .await?;
        let mut held: Vec<(usize, Fence)> = rows
            .iter()
            .map(|r| {
                (
                    r.get::<_, i32>(0).max(0) as usize,
                    Fence(r.get::<_, i64>(1).max(0) as u64),
                )
            })
            .collect();
        held.sort_unstable();
        Ok(held)
    }

    /// Says this worker is here (host, pid), for `status`.
    pub async fn join(&self, client: &Client, worker: &str, host: &str) -> Result<(), StateError> {
        client
            .execute(
                "insert into kb_workers (sweep, worker, host, pid) values ($1, $2, $3, $4) \
                 on conflict (sweep, worker) do update set heartbeat_at = now(), finished_at = null",
                &[&self.id, &worker, &host, &(std::process::id() as i32)],
            )
            .await?;
        Ok(())
    }

    /// Lets go of every job this worker holds (at its end): others may take them at once.
    pub async fn leave(&self, client: &Client, worker: &str) -> Result<(), StateError> {
        client
            .execute(
                "update kb_jobs set owner = null, lease_until = null where sweep = $1 and owner = $2",
                &[&self.id, &worker],
            )
            .await?;
        client
            .execute(
                "update kb_workers set finished_at = now(), in_flight = 0 where sweep = $1 and worker = $2",
                &[&self.id, &worker],
            )
            .await?;
        Ok(())
    }

    /// Gives failed jobs (those `reopen` picks) and the steps skipped behind them back to the
    /// sweep, for a worker started with `--retry-failed` or a raised `--max-attempts`.
    pub async fn reopen(&self, client: &Client, jobs: &[usize]) -> Result<u64, StateError> {
        if jobs.is_empty() {
            return Ok(0);
        }
        let idxs: Vec<i32> = jobs.iter().map(|&j| idx(j)).collect();
        let n = client
            .execute(
                "with recursive d as ( \
                   select idx from kb_jobs where sweep = $1 and idx = any($2) \
                   union select j.idx from kb_jobs j join d on j.parent_idx = d.idx where j.sweep = $1) \
                 update kb_jobs set state = 'open', owner = null, lease_until = null \
                 where sweep = $1 and idx in (select idx from d) and state in ('failed', 'skipped')",
                &[&self.id, &idxs],
            )
            .await?;
        Ok(n)
    }

    /// Gives back jobs recorded as finished whose video is not in the store (removed, cut, or
    /// never put there by a worker that lost its claim): their tasks are paid, so fetching the
    /// video again is work for the next claim, as `status` says. Nobody holds a finished job, so
    /// nothing is taken from a live worker.
    pub async fn reopen_missing(&self, client: &Client, jobs: &[usize]) -> Result<u64, StateError> {
        if jobs.is_empty() {
            return Ok(0);
        }
        let idxs: Vec<i32> = jobs.iter().map(|&j| idx(j)).collect();
        let n = client
            .execute(
                "update kb_jobs set state = 'completed', owner = null, lease_until = null \
                 where sweep = $1 and idx = any($2) and state = 'finished'",
                &[&self.id, &idxs],
            )
            .await?;
        Ok(n)
    }

    /// Pauses every worker of the sweep for `wait` (a 429's `Retry-After`).
    pub async fn pause(&self, client: &Client, wait: Duration) -> Result<(), StateError> {
        client
            .execute(
                "update kb_sweeps set paused_until = greatest(coalesce(paused_until, now()), now() + $2 * interval '1 millisecond') where id = $1",
                &[&self.id, &millis(wait)],
            )
            .await?;
        Ok(())
    }

    pub async fn totals(&self, client: &Client) -> Result<SweepTotals, StateError> {
        let row = client
            .query_one(
                "select s.spent, s.reserved, s.cap, \
                   greatest(0, extract(epoch from (s.paused_until - now())))::float8, \
                   (select count(*) from kb_jobs where sweep = $1 and state in ('open', 'completed')), \
                   (select count(*) from kb_jobs where sweep = $1 and state in ('open', 'completed') and lease_until > now()), \
                   (select count(*) from kb_jobs j left join kb_jobs p on p.sweep = j.sweep and p.idx = j.parent_idx \
                      where j.sweep = $1 and j.state in ('open', 'completed') and (j.owner is null or j.lease_until < now()) \
                        and (j.parent_idx is null or p.state in ('completed', 'finished'))) \
                 from kb_sweeps s where s.id = $1",
                &[&self.id],
            )
            .await?;
        let money = |v: i64| Money::from_micro_cents(v.max(0) as u64);
        let cap: Option<i64> = row.get(2);
        let paused: Option<f64> = row.get(3);
        Ok(SweepTotals {
            spent: money(row.get(0)),
            reserved: money(row.get(1)),
            cap: cap.map(money),
            paused_for: paused.filter(|p| *p > 0.0).map(Duration::from_secs_f64),
            open: row.get::<_, i64>(4).max(0) as u64,
            leased: row.get::<_, i64>(5).max(0) as u64,
            claimable: row.get::<_, i64>(6).max(0) as u64,
            workers: 1,
        })
    }

    /// Workers whose heartbeat is younger than a lease and that have not left.
    pub async fn live_workers(&self, client: &Client, lease: Duration) -> Result<u64, StateError> {
        let row = client
            .query_one(
                "select count(*) from kb_workers where sweep = $1 and finished_at is null \
                 and heartbeat_at > now() - $2 * interval '1 millisecond'",
                &[&self.id, &millis(lease)],
            )
            .await?;
        Ok(row.get::<_, i64>(0).max(0) as u64)
    }

    /// The sweep's workers, for `status`.
    pub async fn workers(&self, client: &Client) -> Result<Vec<WorkerRow>, StateError> {
        let rows = client
            .query(
                "select w.worker, w.host, w.pid, \
                   (select count(*) from kb_jobs j where j.sweep = w.sweep and j.owner = w.worker and j.lease_until > now()), \
                   extract(epoch from (now() - w.heartbeat_at))::float8, w.finished_at is not null, w.in_flight \
                 from kb_workers w where w.sweep = $1 order by w.started_at",
                &[&self.id],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| WorkerRow {
                worker: r.get(0),
                host: r.get(1),
                pid: r.get(2),
                jobs: r.get(3),
                seconds_since_heartbeat: r.get(4),
                finished: r.get(5),
                in_flight: r.get(6),
            })
            .collect())
    }
}
