//! A worker that pauses (issue 24): a real worker process SIGSTOPped past its lease while another
//! takes its jobs over, then SIGCONTed, on a real PostgreSQL. Whatever the paused worker does when
//! it wakes, nothing is paid twice, the database's spend is what the simulator billed, every file
//! is the task's video and what its record says, and both workers say why they ended as they did.
//! Also: two workers asking for different caps on one sweep.

use crate::common::{TestEnv, wait_until};
use crate::pg::{Postgres, records_of};
use kling_batch::sim::{Faults, GenerationTime};
use std::process::Output;
use std::time::Duration;

/// 4 jobs of 5 s at 720p on kling-3.0: $0.70 each.
const FOUR: &str = r#"
defaults: { model: kling-3.0, duration_seconds: 5 }
prompts: ["a lake at dawn", "a river in spring", "a sea in a storm", "a forest at night"]
"#;

/// Sends `signal` (STOP, CONT) to the process `pid`, as `kill -s` does.
fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args(["-s", signal, &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -s {signal} {pid}");
}

fn count(pg: &Postgres, db: &str, sql: &str) -> u64 {
    pg.try_sql(db, sql).ok().and_then(|n| n.parse().ok()).unwrap_or(0)
}

fn text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The money and the files after both workers ended: one create per job, nothing billed twice,
/// the database's spend is the bill, every job completed with the task's own video, exactly as
/// recorded.
fn check_sweep(env: &TestEnv, pg: &Postgres, db: &str, jobs: usize) {
    env.check_invariants(None);
    let rows = env.results();
    assert_eq!(rows.len(), jobs);
    assert!(rows.iter().all(|r| r["status"] == "completed"), "{rows:?}");
    let stats = env.sim.stats();
    assert_eq!(stats.counters.tasks_created as usize, jobs, "one task per job");
    for (job, created) in &stats.counters.creates_per_client_request_id {
        assert_eq!(*created, 1, "{job} made {created} tasks");
    }
    let spent: i64 = pg.sql(db, "select spent from kb_sweeps").parse().unwrap();
    let billed_micro_cents = (stats.billed_usd * 100.0 * 1e6).round() as i64;
    assert_eq!(
        spent, billed_micro_cents,
        "the database's spend is what the service billed"
    );
    let reserved: i64 = pg.sql(db, "select reserved from kb_sweeps").parse().unwrap();
    assert_eq!(reserved, 0, "nothing is held once every job is done");
    // Each job's accepted `downloaded` records all name the file that is there.
    for row in &rows {
        let recorded = pg.sql(
            db,
            &format!(
                "select string_agg(record, '|') from kb_records where job_id = '{}' and record like '%\"t\":\"downloaded\"%'",
                row["job_id"]
            ),
        );
        let bytes = std::fs::read(env.out.join(&row["video_path"])).unwrap();
        let sum = format!("blake3:{}", blake3::hash(&bytes).to_hex());
        for record in recorded.split('|') {
            let value: serde_json::Value = serde_json::from_str(record).unwrap();
            assert_eq!(value["bytes"].as_u64(), Some(bytes.len() as u64), "{record}");
            assert_eq!(value["checksum"].as_str(), Some(sum.as_str()), "{record}");
        }
    }
}

/// One round: worker A works the sweep until `stop_when` holds, is stopped, B runs the sweep to its
/// end, A is woken; both end, explained.
async fn pause_round(env: &TestEnv, pg: &Postgres, db: &str, stop_when: &dyn Fn(u32) -> bool) -> (Output, Output) {
    let url = pg.url(db);
    let args = [
        "--state",
        url.as_str(),
        "--lease",
        "2s",
        "--max-spend",
        "none",
        "--concurrency",
        "4",
    ];
    let first = env.command(&args).spawn().expect("worker A starts");
    let pid = first.id().unwrap();
    let first = tokio::spawn(first.wait_with_output());
    wait_until(
        Duration::from_secs(60),
        "worker A to reach the point of its pause",
        || stop_when(pid),
    )
    .await;
    signal(pid, "STOP");
    // B starts while A sleeps; it can take A's jobs only once A's leases ran out.
    let second = env.command(&args).output().await.expect("worker B runs");
    signal(pid, "CONT");
    let first = tokio::time::timeout(Duration::from_secs(120), first)
        .await
        .expect("worker A ends after it wakes")
        .unwrap()
        .unwrap();
    (first, second)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_paused_past_its_lease_while_its_tasks_generate_pays_nothing_twice() {
    let pg = Postgres::start();
    let db = "paused_generating";
    pg.database(db);
    let env = TestEnv::new(
        |c| {
            // Tasks generate for 5-6 s of real time (50-60 simulated seconds).
            c.time_scale = 10.0;
            c.generation = GenerationTime::Uniform {
                min_seconds: 50.0,
                max_seconds: 60.0,
            };
            c.video_bytes = 40_000;
        },
        FOUR,
    )
    .await;
    // A is stopped once it has created every task (they generate for 5-6 s).
    let (first, second) = pause_round(&env, &pg, db, &|pid| count(&pg, db, &records_of(pid, "submitted")) >= 4).await;
    assert_eq!(second.status.code(), Some(0), "B:\n{}", text(&second));
    assert!(
        text(&second).contains("4 job(s) completed"),
        "B finished A's jobs:\n{}",
        text(&second)
    );
    assert_eq!(first.status.code(), Some(0), "A:\n{}", text(&first));
    let said = text(&first);
    assert!(
        said.contains("lease lost") && said.contains("taken over by other workers"),
        "A says why it did nothing more:\n{said}"
    );
    check_sweep(&env, &pg, db, 4);
}

/// How many times the mid-download pause runs (RELIABILITY.md's campaign sets 20).
fn pause_cycles() -> usize {
    std::env::var("KLING_BATCH_PAUSE_CYCLES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_paused_mid_download_cannot_spoil_the_video_another_worker_stored() {
    let pg = Postgres::start();
    for cycle in 0..pause_cycles() {
        let db = format!("paused_download_{cycle}");
        pg.database(&db);
        let env = TestEnv::new(
            |c| {
                c.seed = cycle as u64;
                c.time_scale = 100.0;
                c.video_bytes = 300_000;
                // A slow file host: every download takes about three seconds.
                c.faults = Faults {
                    trickle_rate: 1.0,
                    trickle_bytes_per_second: 100_000,
                    ..Faults::default()
                };
            },
            FOUR,
        )
        .await;
        let videos = env.out.join("videos");
        // A is stopped once a part file of its own has bytes in it: mid-download.
        let started = |_: u32| {
            std::fs::read_dir(&videos).is_ok_and(|entries| {
                entries.flatten().any(|e| {
                    e.file_name().to_string_lossy().ends_with(".part") && e.metadata().is_ok_and(|m| m.len() > 0)
                })
            })
        };
        let (first, second) = pause_round(&env, &pg, &db, &started).await;
        assert_eq!(second.status.code(), Some(0), "cycle {cycle}, B:\n{}", text(&second));
        assert_eq!(first.status.code(), Some(0), "cycle {cycle}, A:\n{}", text(&first));
        assert!(
            text(&first).contains("taken over by other workers"),
            "cycle {cycle}: A says it lost jobs:\n{}",
            text(&first)
        );
        check_sweep(&env, &pg, &db, 4);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_cap_per_sweep_a_lower_one_applies_to_all_and_a_higher_one_needs_raise_cap() {
    let pg = Postgres::start();
    let db = "two_caps";
    let url = pg.database(db);
    let env = TestEnv::new(
        |c| {
            // Tasks generate for 1-1.5 s of real time.
            c.time_scale = 10.0;
            c.generation = GenerationTime::Uniform {
                min_seconds: 10.0,
                max_seconds: 15.0,
            };
        },
        FOUR,
    )
    .await;
    let worker = |cap: &str, extra: &[&str]| {
        let mut args = vec![
            "--state",
            url.as_str(),
            "--lease",
            "2s",
            "--max-spend",
            cap,
            "--concurrency",
            "1",
        ];
        args.extend_from_slice(extra);
        env.command(&args).spawn().unwrap()
    };
    // A starts with $4.20 and is working; B asks for $2.10: the sweep's cap is $2.10 for both.
    let first = worker("4.20", &[]);
    let pid = first.id().unwrap();
    wait_until(Duration::from_secs(60), "worker A to create a task", || {
        count(&pg, db, &records_of(pid, "submitted")) >= 1
    })
    .await;
    // A cap below what A has already committed (a task in flight holds $0.70) cannot take the
    // money back: refused, saying how much is committed; the sweep's cap stays $4.20.
    let created = env.sim.stats().counters.tasks_created;
    let below = worker("0.01", &[]).wait_with_output().await.unwrap();
    assert_eq!(below.status.code(), Some(64), "{}", text(&below));
    assert!(
        text(&below).contains("committed") && text(&below).contains("cannot take that back"),
        "{}",
        text(&below)
    );
    assert_eq!(env.sim.stats().counters.tasks_created, created, "it created nothing");
    let second = worker("2.10", &[]).wait_with_output().await.unwrap();
    let first = first.wait_with_output().await.unwrap();
    assert!(
        text(&second).contains("lowered the sweep's spend cap from $4.20 to $2.10"),
        "B:\n{}",
        text(&second)
    );
    assert!(
        text(&first).contains("the sweep's spend cap changed from $4.20 to $2.10"),
        "A hears of it:\n{}",
        text(&first)
    );
    let stats = env.sim.stats();
    assert!(
        stats.billed_usd <= 2.10 + 1e-9,
        "billed ${} over the $2.10 cap",
        stats.billed_usd
    );
    assert_eq!(
        (first.status.code(), second.status.code()),
        (Some(8), Some(8)),
        "both stopped at the cap:\nA:\n{}\nB:\n{}",
        text(&first),
        text(&second)
    );
    env.check_money(Some(2.10));
    // A higher cap is refused, nothing spent; with --raise-cap it applies, and said so.
    let before = env.sim.stats().counters.tasks_created;
    let refused = worker("4.20", &[]).wait_with_output().await.unwrap();
    assert_eq!(refused.status.code(), Some(64), "{}", text(&refused));
    assert!(text(&refused).contains("--raise-cap"), "{}", text(&refused));
    assert_eq!(env.sim.stats().counters.tasks_created, before, "nothing created");
    let raised = worker("4.20", &["--raise-cap"]).wait_with_output().await.unwrap();
    assert!(
        text(&raised).contains("raised the sweep's spend cap from $2.10 to $4.20"),
        "{}",
        text(&raised)
    );
    assert_eq!(raised.status.code(), Some(0), "{}", text(&raised));
    env.check_invariants(Some(4.20));
}
