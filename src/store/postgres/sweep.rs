//! A sweep in the database: registered once from its plan (a worker whose manifest plans other
//! jobs is refused), read back as the journal is (the same fold), and shared among workers —
//! claims with leases, heartbeats, the totals against the cap, and a pause everyone keeps.

use super::StateError;
use crate::journal::{Record, RecordedSettings, Replayed};
use crate::plan::Plan;
use crate::store::Fence;
use crate::util::money::Money;
use futures::TryStreamExt;
use sha2::{Digest, Sha256};
use std::time::Duration;
use tokio_postgres::Client;

/// Jobs registered per statement (about 300 KB of arrays).
const REGISTER_CHUNK: usize = 4096;

/// A registered sweep, as this worker found (or made) it.
#[derive(Debug, Clone, PartialEq)]
pub struct Sweep {
    pub id: i64,
    pub name: String,
    /// The run id the sweep's idempotency keys derive from: the same for every worker.
    pub run_id: String,
    /// The cap and limits recorded with the sweep (issue 8's rule 4: a later worker keeps them
    /// unless it is given others).
    pub cap: Option<Money>,
    pub settings: Option<RecordedSettings>,
    /// Whether the sweep's cap was set (a `None` cap is then "no cap", not "none yet").
    pub cap_set: bool,
    /// Whether this worker registered it.
    pub created: bool,
}

/// What became of the cap a worker asked for: the sweep has one cap, which a worker may lower
/// for everyone, and raise only when told to (`--raise-cap`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapChange {
    /// The sweep had no cap yet: it is this one now.
    Set(Option<Money>),
    Unchanged(Option<Money>),
    Lowered {
        from: Option<Money>,
        to: Option<Money>,
    },
    Raised {
        from: Option<Money>,
        to: Option<Money>,
    },
    /// Higher than the sweep's, without `--raise-cap`: nothing changed.
    Refused {
        current: Option<Money>,
        asked: Option<Money>,
    },
}

impl CapChange {
    /// The sweep's cap after the change (`None`: no cap).
    pub fn cap(self) -> Option<Money> {
        match self {
            CapChange::Set(c) | CapChange::Unchanged(c) => c,
            CapChange::Lowered { to, .. } | CapChange::Raised { to, .. } => to,
            CapChange::Refused { current, .. } => current,
        }
    }
}

/// `a` below `b`, where `None` is no cap at all.
fn below(a: Option<Money>, b: Option<Money>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a < b,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

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

/// The plan's identity: its job ids in order (and each step's parent). Workers of one sweep plan
/// the same jobs.
pub fn plan_digest(plan: &Plan) -> String {
    let mut hasher = Sha256::new();
    for job in &plan.jobs {
        hasher.update(job.id.as_str().as_bytes());
        if let Some(p) = job.parent {
            hasher.update(format!("<{p}").as_bytes());
        }
        hasher.update(b"\n");
    }
    crate::util::hex::hex(&hasher.finalize()[..16])
}

fn idx(i: usize) -> i32 {
    i32::try_from(i).unwrap_or(i32::MAX)
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl Sweep {
    /// Registers the sweep `name` for `plan`, or finds it: the same plan is joined, another is
    /// refused. `run_id` is used when the sweep is new.
    pub async fn register(
        client: &mut Client,
        name: &str,
        plan: &Plan,
        run_id: &str,
        manifest: &str,
    ) -> Result<Sweep, StateError> {
        let digest = plan_digest(plan);
        let tx = client.transaction().await?;
        tx.execute("select pg_advisory_xact_lock(7142180902)", &[]).await?;
        let found = tx
            .query_opt(
                "select id, plan_digest, jobs, run_id, cap, settings, cap_set from kb_sweeps where name = $1",
                &[&name],
            )
            .await?;
        if let Some(row) = found {
            let registered: String = row.get(1);
            if registered != digest {
                let jobs: i32 = row.get(2);
                return Err(StateError::DifferentPlan {
                    name: name.to_string(),
                    registered: i64::from(jobs),
                    planned: plan.jobs.len(),
                });
            }
            let cap: Option<i64> = row.get(4);
            let settings: Option<String> = row.get(5);
            return Ok(Sweep {
                id: row.get(0),
                name: name.to_string(),
                run_id: row.get(3),
                cap: cap.map(|c| Money::from_micro_cents(c.max(0) as u64)),
                settings: settings.and_then(|s| serde_json::from_str(&s).ok()),
                cap_set: row.get(6),
                created: false,
            });
        }
        let id: i64 = tx
            .query_one(
                "insert into kb_sweeps (name, plan_digest, jobs, manifest, run_id) values ($1, $2, $3, $4, $5) returning id",
                &[&name, &digest, &idx(plan.jobs.len()), &manifest, &run_id],
            )
            .await?
            .get(0);
        // The jobs as arrays, a few thousand to a statement: one statement for 100,000 jobs grew
        // the connection's write buffers to 18 MB, which it keeps for the rest of the run.
        for (chunk, jobs) in plan.jobs.chunks(REGISTER_CHUNK).enumerate() {
            let first = chunk * REGISTER_CHUNK;
            let idxs: Vec<i32> = (first..first + jobs.len()).map(idx).collect();
            let ids: Vec<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
            let parents: Vec<i32> = jobs.iter().map(|j| j.parent.map_or(-1, idx)).collect();
            tx.execute(
                "insert into kb_jobs (sweep, idx, job_id, parent_idx) \
                 select $1, i, j, nullif(p, -1) from unnest($2::int4[], $3::text[], $4::int4[]) as t(i, j, p)",
                &[&id, &idxs, &ids, &parents],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(Sweep {
            id,
            name: name.to_string(),
            run_id: run_id.to_string(),
            cap: None,
            settings: None,
            cap_set: false,
            created: true,
        })
    }

    /// Finds a registered sweep by name (for `status` and `report`).
    pub async fn find(client: &Client, name: &str) -> Result<Option<Sweep>, StateError> {
        let row = client
            .query_opt(
                "select id, run_id, cap, settings, cap_set from kb_sweeps where name = $1",
                &[&name],
            )
            .await?;
        Ok(row.map(|row| {
            let cap: Option<i64> = row.get(2);
            let settings: Option<String> = row.get(3);
            Sweep {
                id: row.get(0),
                name: name.to_string(),
                run_id: row.get(1),
                cap: cap.map(|c| Money::from_micro_cents(c.max(0) as u64)),
                settings: settings.and_then(|s| serde_json::from_str(&s).ok()),
                cap_set: row.get(4),
                created: false,
            }
        }))
    }

    /// Records the limits the sweep runs under (the latest worker's, as a resume's). The cap is
    /// not among them: `settle_cap` alone changes it.
    pub async fn record_limits(
        &self,
        client: &Client,
        rate: f64,
        settings: &RecordedSettings,
    ) -> Result<(), StateError> {
        let text = serde_json::to_string(settings).unwrap_or_default();
        client
            .execute(
                "update kb_sweeps set rate = $2, settings = $3 where id = $1",
                &[&self.id, &rate, &text],
            )
            .await?;
        Ok(())
    }

    /// The sweep's one cap, against what this worker asks for (`None`: keep it, as a worker
    /// started without `--max-spend` does; `Some(None)`: no cap). The first worker sets it; a
    /// later one may lower it for everyone; raising it (or lifting it) needs `raise`. Decided
    /// under the sweep row's lock, so two workers asking at once both see the other's answer.
    /// `fallback` is what a sweep with no cap yet gets when this worker asks for nothing.
    pub async fn settle_cap(
        &self,
        client: &mut Client,
        asked: Option<Option<Money>>,
        fallback: Option<Money>,
        raise: bool,
    ) -> Result<CapChange, StateError> {
        let tx = client.transaction().await?;
        let row = tx
            .query_one(
                "select cap, cap_set from kb_sweeps where id = $1 for update",
                &[&self.id],
            )
            .await?;
        let money = |v: i64| Money::from_micro_cents(v.max(0) as u64);
        let current: Option<Money> = row.get::<_, Option<i64>>(0).map(money);
        let set: bool = row.get(1);
        let change = match (set, asked) {
            (false, asked) => CapChange::Set(asked.unwrap_or(fallback)),
            (true, None) => CapChange::Unchanged(current),
            (true, Some(asked)) if asked == current => CapChange::Unchanged(current),
            (true, Some(asked)) if below(asked, current) => CapChange::Lowered {
                from: current,
                to: asked,
            },
            (true, Some(asked)) if raise => CapChange::Raised {
                from: current,
                to: asked,
            },
            (true, Some(asked)) => CapChange::Refused { current, asked },
        };
        if matches!(
            change,
            CapChange::Set(_) | CapChange::Lowered { .. } | CapChange::Raised { .. }
        ) {
            let cap = change.cap().map(|c| i64::try_from(c.micro_cents()).unwrap_or(i64::MAX));
            tx.execute(
                "update kb_sweeps set cap = $2, cap_set = true where id = $1",
                &[&self.id, &cap],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(change)
    }

    /// Every record of the sweep, folded as a resume folds the journal (streamed, never all
    /// held).
    pub async fn replay(&self, client: &Client) -> Result<Replayed, StateError> {
        let mut out = Replayed::default();
        let rows = client
            .query_raw(
                "select record from kb_records where sweep = $1 order by seq",
                [&self.id as &(dyn tokio_postgres::types::ToSql + Sync)],
            )
            .await?;
        futures::pin_mut!(rows);
        while let Some(row) = rows.try_next().await? {
            let text: &str = row.get(0);
            if let Ok(record) = serde_json::from_str::<Record>(text) {
                out.apply(&record);
            }
        }
        out.finish();
        out.run_id = Some(self.run_id.clone());
        Ok(out)
    }

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
    pub async fn heartbeat(
        &self,
        client: &Client,
        worker: &str,
        lease: Duration,
        in_flight: usize,
    ) -> Result<Vec<(usize, Fence)>, StateError> {
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
