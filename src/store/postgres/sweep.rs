//! A sweep in the database: registered once from its plan (a worker whose manifest plans other
//! jobs is refused), read back as the journal is (the same fold), and shared among workers —
//! claims with leases, heartbeats, the totals against the cap, and a pause everyone keeps.

use super::StateError;
use crate::journal::{Record, RecordedSettings, Replayed};
use crate::plan::Plan;
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
    /// Lower than what the sweep has billed and holds for tasks in flight: no cap can take back
    /// money already committed, so nothing changed.
    BelowCommitted {
        current: Option<Money>,
        asked: Money,
        spent: Money,
        held: Money,
    },
}

impl CapChange {
    /// The sweep's cap after the change (`None`: no cap).
    pub fn cap(self) -> Option<Money> {
        match self {
            CapChange::Set(c) | CapChange::Unchanged(c) => c,
            CapChange::Lowered { to, .. } | CapChange::Raised { to, .. } => to,
            CapChange::Refused { current, .. } | CapChange::BelowCommitted { current, .. } => current,
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

/// A plan position as the database stores it (`int4`).
pub(super) fn idx(i: usize) -> i32 {
    i32::try_from(i).unwrap_or(i32::MAX)
}

pub(super) fn millis(d: Duration) -> f64 {
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
                "select cap, cap_set, spent, reserved from kb_sweeps where id = $1 for update",
                &[&self.id],
            )
            .await?;
        let money = |v: i64| Money::from_micro_cents(v.max(0) as u64);
        let current: Option<Money> = row.get::<_, Option<i64>>(0).map(money);
        let set: bool = row.get(1);
        let (spent, held) = (money(row.get(2)), money(row.get(3)));
        let change = match (set, asked) {
            // Checked in the same transaction as the change: what is committed cannot grow under it.
            (true, Some(Some(asked))) if asked < spent.saturating_add(held) && below(Some(asked), current) => {
                CapChange::BelowCommitted {
                    current,
                    asked,
                    spent,
                    held,
                }
            }
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
}
