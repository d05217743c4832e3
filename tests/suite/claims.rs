//! The claim protocol as a model test (issue 24), on a real PostgreSQL: random interleavings of
//! claims (with leases that run out at once, as a paused worker's do, or that hold), takeovers and
//! writes made under old claims. The model says which claim holds each job; the store must accept
//! exactly the writes made under that claim, and its money must always be the sum of the facts of
//! the records it accepted.

use crate::pg::Postgres;
use kling_batch::journal::{JobFacts, Record};
use kling_batch::store::postgres::{Conn, PgRunStore, Sweep};
use kling_batch::store::{Fence, RunStore};
use proptest::prelude::*;
use std::collections::HashMap;
use std::time::Duration;

const JOBS: usize = 3;
const WORKERS: usize = 3;

#[derive(Debug, Clone)]
enum Step {
    /// A worker claims what it can; `lapse`: its leases run out at once (it will be paused).
    Claim { worker: usize, lapse: bool },
    /// A worker writes a record about a job under the last claim it had on it (maybe stale).
    Write { worker: usize, job: usize, kind: Kind },
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    /// A submit intent holding this many cents.
    Reserve(u64),
    /// The task completed, billed this many cents.
    Bill(u64),
    /// The attempt failed: what it held is released.
    Release,
    /// The video is stored: the job is finished.
    Store,
}

fn step() -> impl Strategy<Value = Step> {
    let kind = prop_oneof![
        (1u64..200).prop_map(Kind::Reserve),
        (1u64..200).prop_map(Kind::Bill),
        Just(Kind::Release),
        Just(Kind::Store),
    ];
    prop_oneof![
        1 => (0..WORKERS, any::<bool>()).prop_map(|(worker, lapse)| Step::Claim { worker, lapse }),
        3 => (0..WORKERS, 0..JOBS, kind).prop_map(|(worker, job, kind)| Step::Write { worker, job, kind }),
    ]
}

fn record(kind: Kind, job: &str, facts: &JobFacts) -> Record {
    let at = "2026-12-07T00:00:00Z".to_string();
    let job = job.to_string();
    match kind {
        Kind::Reserve(cents) => Record::Submitting {
            job,
            attempt: facts.attempt + 1,
            key: format!("k{}", facts.attempt + 1),
            reserve: cents * 1_000_000,
            body: None,
            send_until: None,
            at,
        },
        Kind::Bill(cents) => Record::Completed {
            job,
            task_id: "t".into(),
            url: "https://videos.example/t.mp4".into(),
            cost: cents * 1_000_000,
            at,
        },
        Kind::Release => Record::AttemptFailed {
            job,
            attempt: facts.attempt.max(1),
            task_id: "t".into(),
            message: "failed".into(),
            at,
        },
        Kind::Store => Record::Downloaded {
            job,
            path: "videos/x.mp4".into(),
            bytes: 1,
            checksum: "blake3:00".into(),
            at,
        },
    }
}

struct Worker {
    name: String,
    store: PgRunStore,
    control: tokio_postgres::Client,
    /// The last claim this worker had on each job (it may have lost it since).
    fences: HashMap<usize, Fence>,
}

async fn check_case(url: String, case: usize, steps: Vec<Step>) -> Result<(), TestCaseError> {
    let plan = crate::common::plan_from_yaml(
        "defaults: { model: kling-3.0 }\nprompts: [\"a lake\", \"a river\", \"a sea\"]\n",
    )
    .unwrap();
    let ids: Vec<String> = plan.jobs.iter().map(|j| j.id.to_string()).collect();
    let index: HashMap<_, i32> = plan
        .jobs
        .iter()
        .enumerate()
        .map(|(i, j)| (j.id.clone(), i as i32))
        .collect();
    let mut setup = kling_batch::store::postgres::connect(&url, kling_batch::store::postgres::DEFAULT_DEADLINE)
        .await
        .unwrap();
    kling_batch::store::postgres::migrate(&mut setup).await.unwrap();
    let sweep = Sweep::register(&mut setup, &format!("case-{case}"), &plan, "run", "m.yaml")
        .await
        .unwrap();
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let name = format!("w{w}");
        let writer = kling_batch::store::postgres::connect(&url, kling_batch::store::postgres::DEFAULT_DEADLINE)
            .await
            .unwrap();
        let store = PgRunStore::start(
            Conn::new(&url, writer, kling_batch::store::postgres::DEFAULT_DEADLINE),
            sweep.id,
            name.clone(),
            &HashMap::new(),
            index.clone(),
            Duration::from_secs(10),
        );
        workers.push(Worker {
            name,
            store,
            control: kling_batch::store::postgres::connect(&url, kling_batch::store::postgres::DEFAULT_DEADLINE)
                .await
                .unwrap(),
            fences: HashMap::new(),
        });
    }
    // The model: who holds each job under which fence, and the facts of the accepted records.
    let mut holder: HashMap<usize, (usize, Fence)> = HashMap::new();
    let mut accepted: Vec<JobFacts> = vec![JobFacts::default(); JOBS];
    for (n, step) in steps.iter().enumerate() {
        match *step {
            Step::Claim { worker, lapse } => {
                let lease = if lapse { Duration::ZERO } else { Duration::from_secs(60) };
                let w = &mut workers[worker];
                let claimed = sweep.claim(&mut w.control, &w.name, JOBS, lease).await.unwrap();
                w.store.learn(&claimed.records);
                for (&job, &fence) in claimed.jobs.iter().zip(&claimed.fences) {
                    if let Some((_, old)) = holder.get(&job) {
                        prop_assert!(fence > *old, "step {n}: a claim's fence grows ({old:?} then {fence:?})");
                    }
                    holder.insert(job, (worker, fence));
                    w.fences.insert(job, fence);
                }
            }
            Step::Write { worker, job, kind } => {
                let fence = workers[worker].fences.get(&job).copied();
                let current = holder.get(&job).copied();
                // A write under no claim at all is as stale as one under an old claim.
                let stale = fence.is_none() || current != fence.map(|f| (worker, f));
                let rec = record(kind, &ids[job], &accepted[job]);
                let result = workers[worker].store.append_durable(&rec, fence).await;
                match (&result, stale) {
                    (Ok(()), false) => accepted[job].apply(&rec),
                    (Err(e), true) => prop_assert!(e.fenced, "step {n}: refused for another reason: {e}"),
                    (Ok(()), true) => prop_assert!(false, "step {n}: a stale write was accepted: {step:?}"),
                    (Err(e), false) => prop_assert!(false, "step {n}: the holder's write was refused: {e}"),
                }
            }
        }
        // After every step: the store's money is the sum of what its accepted records say.
        let row = setup
            .query_one("select spent, reserved from kb_sweeps where id = $1", &[&sweep.id])
            .await
            .unwrap();
        let (spent, reserved): (i64, i64) = (row.get(0), row.get(1));
        let want_spent: u64 = accepted.iter().map(|f| f.cost.unwrap_or_default().micro_cents()).sum();
        let want_reserved: u64 = accepted.iter().map(|f| f.reserved.micro_cents()).sum();
        prop_assert_eq!(spent as u64, want_spent, "step {}: spent", n);
        prop_assert_eq!(reserved as u64, want_reserved, "step {}: reserved", n);
        let sums = setup
            .query_one(
                "select coalesce(sum(reserved), 0)::int8, coalesce(sum(cost), 0)::int8 from kb_jobs where sweep = $1",
                &[&sweep.id],
            )
            .await
            .unwrap();
        prop_assert_eq!(sums.get::<_, i64>(0), reserved, "step {}: the jobs' reserves add up", n);
        prop_assert_eq!(sums.get::<_, i64>(1), spent, "step {}: the jobs' costs add up", n);
    }
    // The records the store kept fold to exactly the accepted facts.
    let replayed = sweep.replay(&setup).await.unwrap();
    for (job, id) in ids.iter().enumerate() {
        let kept = replayed.jobs.get(id).cloned().unwrap_or_default();
        prop_assert_eq!(kept.cost, accepted[job].cost, "{}: cost", id);
        prop_assert_eq!(kept.reserved, accepted[job].reserved, "{}: reserved", id);
        prop_assert_eq!(kept.attempt, accepted[job].attempt, "{}: attempt", id);
    }
    for w in &workers {
        w.store.close().await.unwrap();
    }
    Ok(())
}

#[test]
fn no_stale_write_is_ever_accepted_and_the_money_is_the_sum_of_accepted_facts() {
    let pg = Postgres::start();
    let url = pg.database("claims");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let case = std::sync::atomic::AtomicUsize::new(0);
    let config = ProptestConfig {
        cases: 24,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(steps in prop::collection::vec(step(), 1..40))| {
        let n = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        runtime.block_on(check_case(url.clone(), n, steps))?;
    });
}

/// A heartbeat gives back the jobs its worker is done with (issue 36): one it holds and no longer
/// works on (counted done here, its record never reached the sweep) goes back, and another
/// worker's claim takes it — the sweep cannot stay stuck on a job nobody works. The rest stay held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_keeps_only_the_work_in_hand() {
    let pg = Postgres::start();
    let url = pg.database("in_hand");
    let plan = crate::common::plan_from_yaml(
        "defaults: { model: kling-3.0 }\nprompts: [\"a lake\", \"a river\", \"a sea\"]\n",
    )
    .unwrap();
    let deadline = kling_batch::store::postgres::DEFAULT_DEADLINE;
    let mut client = kling_batch::store::postgres::connect(&url, deadline).await.unwrap();
    kling_batch::store::postgres::migrate(&mut client).await.unwrap();
    let sweep = Sweep::register(&mut client, "in-hand", &plan, "run", "m.yaml")
        .await
        .unwrap();
    let lease = Duration::from_secs(60);
    let first = sweep.claim(&mut client, "w0", JOBS, lease).await.unwrap();
    assert_eq!(first.jobs.len(), JOBS, "w0 holds every job");
    // w0 works on job 0 only now (it counted the others done).
    let held = sweep.heartbeat(&client, "w0", lease, 1, &[1, 2]).await.unwrap();
    assert_eq!(
        held.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        vec![0],
        "only job 0 is renewed"
    );
    let mut other = kling_batch::store::postgres::connect(&url, deadline).await.unwrap();
    let second = sweep.claim(&mut other, "w1", JOBS, lease).await.unwrap();
    let mut taken = second.jobs.clone();
    taken.sort_unstable();
    assert_eq!(
        taken,
        vec![1, 2],
        "the jobs w0 no longer works on are claimed at once, within its lease"
    );
}
