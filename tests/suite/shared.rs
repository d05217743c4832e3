//! Several workers, one sweep (issue 18): real PostgreSQL (a throwaway cluster, `pg.rs`), real
//! worker processes against the simulator, killed and restarted, and the database itself stopped
//! and started mid-run.

use crate::common::TestEnv;
use crate::pg::{Postgres, records_of};
use kling_batch::sim::Faults;
use std::process::Stdio;
use tokio::io::AsyncBufReadExt;

/// 30 jobs of 5 s at 720p on kling-3.0: $0.70 each, $21 in all.
const THIRTY: &str = r#"
defaults: { model: kling-3.0, duration_seconds: 5 }
prompts:
  - "a lake at dawn"
  - "a river in spring"
  - "a sea in a storm"
  - "a forest at night"
  - "a desert at noon"
  - "a city in the rain"
  - "a glacier at dusk"
  - "a meadow in summer"
  - "a canyon at sunset"
  - "a harbour in fog"
matrix: { aspect_ratio: ["16:9", "9:16", "1:1"] }
"#;

/// A worker process of the sweep in `env`'s folder.
fn worker(env: &TestEnv, url: &str, extra: &[&str]) -> tokio::process::Child {
    let mut args = vec!["--state", url, "--lease", "2s", "--max-spend", "none"];
    args.extend_from_slice(extra);
    env.command(&args).spawn().expect("the worker starts")
}

/// Waits until `sql` (a count) reaches `at_least`, reading the database as the workers write it.
async fn wait_for(pg: &Postgres, db: &str, sql: &str, at_least: u64) {
    // Before the first worker made the tables, there is nothing to count.
    let count = || {
        pg.try_sql(db, sql)
            .ok()
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    crate::common::wait_until(
        std::time::Duration::from_secs(120),
        &format!("{sql} to reach {at_least}"),
        || count() >= at_least,
    )
    .await;
}

const FINISHED: &str = "select count(*) from kb_jobs where state = 'finished'";

async fn exit_code(mut child: tokio::process::Child) -> Option<i32> {
    child.wait().await.unwrap().code()
}

/// Every job of the sweep completed exactly once: one task per job, its video on disk.
pub(crate) fn check_once(env: &TestEnv, jobs: usize) {
    env.check_invariants(None);
    let rows = env.results();
    assert_eq!(rows.len(), jobs);
    assert!(rows.iter().all(|r| r["status"] == "completed"), "{rows:?}");
    let stats = env.sim.stats();
    assert_eq!(stats.counters.billed_per_client_request_id.len(), jobs);
    for (job, created) in &stats.counters.creates_per_client_request_id {
        assert_eq!(*created, 1, "{job} made {created} tasks");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_two_killed_every_job_once_and_no_storm_of_429s() {
    let pg = Postgres::start();
    let url = pg.database("three");
    let env = TestEnv::new(
        |c| {
            c.seed = 21;
            c.time_scale = 100.0;
            c.video_bytes = 60_000;
            c.faults = Faults {
                drop_after_create_rate: 0.1,
                server_error_rate: 0.02,
                truncate_download_rate: 0.2,
                not_found_reads: 1,
                // Just above the sweep's --rate 30: the workers share it, so they stay under.
                rate_limit_per_second: Some(40.0),
                rate_limit_burst: 10.0,
                ..Faults::default()
            };
        },
        THIRTY,
    )
    .await;
    let extra = ["--concurrency", "4", "--rate", "30"];
    let first = worker(&env, &url, &extra);
    let second = worker(&env, &url, &extra);
    let third = worker(&env, &url, &extra);
    let (pid1, pid2) = (first.id().unwrap(), second.id().unwrap());
    // The first is killed once it has sent creates; the second once a third of the sweep is done.
    wait_for(&pg, "three", &records_of(pid1, "submitting"), 2).await;
    let mut first = first;
    first.start_kill().unwrap();
    first.wait().await.unwrap();
    wait_for(&pg, "three", FINISHED, 10).await;
    let mut second = second;
    second.start_kill().unwrap();
    second.wait().await.unwrap();
    let mut code = exit_code(third).await;
    for _ in 0..3 {
        // 5: a download that met a fault on every try is left for the next worker.
        if code != Some(5) {
            break;
        }
        code = exit_code(worker(&env, &url, &extra)).await;
    }
    assert_eq!(code, Some(0));
    check_once(&env, 30);
    let taken_over = pg.sql("three", &format!("{} ", records_of(pid2, "submitted")));
    assert!(
        taken_over.parse::<u64>().unwrap() > 0,
        "the second worker worked before it died"
    );
    let stats = env.sim.stats();
    assert!(
        stats.counters.rate_limited <= 3,
        "{} answers of 429 for workers sharing a rate below the limit",
        stats.counters.rate_limited
    );
    assert_eq!(
        stats.counters.conflicts, 0,
        "a taken-over job re-sent its own key and body"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cap_holds_across_three_workers() {
    let pg = Postgres::start();
    let url = pg.database("capped");
    let env = TestEnv::new(|c| c.time_scale = 200.0, THIRTY).await;
    let cap = 7.0;
    let args = [
        "--state",
        url.as_str(),
        "--lease",
        "2s",
        "--max-spend",
        "7",
        "--concurrency",
        "6",
    ];
    let workers: Vec<_> = (0..3).map(|_| env.command(&args).spawn().unwrap()).collect();
    for w in workers {
        let code = exit_code(w).await;
        assert!(matches!(code, Some(0 | 8)), "{code:?}");
    }
    let stats = env.sim.stats();
    assert!(
        stats.billed_usd <= cap + 1e-9,
        "three workers billed ${} against a ${cap} cap",
        stats.billed_usd
    );
    assert!(
        stats.billed_usd >= cap - 0.7 - 1e-9,
        "the cap was used: ${}",
        stats.billed_usd
    );
    env.check_money(Some(cap));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_restarted_mid_run_loses_nothing_and_bills_nothing_twice() {
    let pg = Postgres::start();
    let url = pg.database("restart");
    let env = TestEnv::new(
        |c| {
            c.time_scale = 50.0;
            c.seed = 4;
        },
        THIRTY,
    )
    .await;
    let mut child = env
        .command(&[
            "--state",
            &url,
            "--lease",
            "5s",
            "--concurrency",
            "4",
            "--max-spend",
            "none",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&pg, "restart", FINISHED, 5).await;
    pg.stop();
    // The worker notices: its records cannot be committed (it says so, and retries).
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        let noticed = line.contains("did not take a group of records") || line.contains("heartbeat failed");
        seen.push(line);
        if noticed {
            break;
        }
    }
    let created_while_down = env.sim.stats().counters.tasks_created;
    pg.restart();
    let drain = tokio::spawn(async move {
        let mut rest = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            rest.push(line);
        }
        rest
    });
    let code = child.wait().await.unwrap().code();
    let rest = drain.await.unwrap();
    assert_eq!(code, Some(0), "{}\n{}", seen.join("\n"), rest.join("\n"));
    assert!(created_while_down < 30, "the outage came before the end");
    check_once(&env, 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_worker_takes_a_share_and_another_manifest_or_a_newer_schema_is_refused() {
    let pg = Postgres::start();
    let url = pg.database("late");
    let env = TestEnv::new(|c| c.time_scale = 30.0, THIRTY).await;
    let first = worker(&env, &url, &["--concurrency", "2"]);
    wait_for(&pg, "late", FINISHED, 3).await;
    let late = worker(&env, &url, &["--concurrency", "2"]);
    let late_pid = late.id().unwrap();
    assert_eq!(exit_code(first).await, Some(0));
    assert_eq!(exit_code(late).await, Some(0));
    check_once(&env, 30);
    let share: u64 = pg.sql("late", &records_of(late_pid, "downloaded")).parse().unwrap();
    assert!(share > 0, "the late worker finished some of the sweep");

    // `status --state` shows the sweep and its workers.
    let status = crate::common::run(&["status", env.out.to_str().unwrap(), "--state", &url]);
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert!(status.stdout.contains("30 jobs: 30 completed"), "{}", status.stdout);
    assert!(status.stdout.contains(&format!("pid {late_pid}")), "{}", status.stdout);

    // `report --state` rewrites results.csv and report.html for the whole sweep.
    std::fs::remove_file(env.out.join("results.csv")).unwrap();
    let report = crate::common::run(&["report", env.out.to_str().unwrap(), "--state", &url]);
    assert_eq!(report.code, 0, "{}", report.stderr);
    assert_eq!(env.results().iter().filter(|r| r["status"] == "completed").count(), 30);

    // A worker whose manifest plans other jobs is refused, and creates nothing.
    let created = env.sim.stats().counters.tasks_created;
    std::fs::write(&env.manifest, THIRTY.replace("a lake at dawn", "a pond at dawn")).unwrap();
    let out = env.run(&["--state", &url]).await;
    assert_eq!(out.code, Some(4), "{}", out.stderr);
    assert!(
        out.stderr.contains("registered from a different manifest"),
        "{}",
        out.stderr
    );
    assert_eq!(env.sim.stats().counters.tasks_created, created);

    // A database a newer kling-batch set up is refused with a clear message.
    pg.sql("late", "update kb_schema set version = 99");
    let out = env.run(&["--state", &url]).await;
    assert_eq!(out.code, Some(4), "{}", out.stderr);
    assert!(out.stderr.contains("set up by a newer kling-batch"), "{}", out.stderr);
    // The password of a state address never shows in what is printed.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let secret = format!("postgres://kb:hunter2@127.0.0.1:{closed}/nowhere");
    let out = env.run(&["--state", &secret]).await;
    assert_ne!(out.code, Some(0));
    assert!(!out.stderr.contains("hunter2"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_one_worker_meets_pauses_the_sweep() {
    let pg = Postgres::start();
    let url = pg.database("paused");
    // A service far slower than the rate asked for: 429s come at once.
    let env = TestEnv::new(
        |c| {
            c.time_scale = 200.0;
            c.faults = Faults {
                rate_limit_per_second: Some(20.0),
                rate_limit_burst: 2.0,
                ..Faults::default()
            };
        },
        THIRTY,
    )
    .await;
    let extra = ["--rate", "200", "--concurrency", "8"];
    let (a, b) = (worker(&env, &url, &extra), worker(&env, &url, &extra));
    assert_eq!(exit_code(a).await, Some(0));
    assert_eq!(exit_code(b).await, Some(0));
    check_once(&env, 30);
    assert!(env.sim.stats().counters.rate_limited > 0, "the service answered 429");
    assert_eq!(
        pg.sql(
            "paused",
            "select count(*) from kb_sweeps where paused_until is not null"
        ),
        "1",
        "the 429's Retry-After was recorded for every worker of the sweep"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_run_a_chain_each_step_after_its_parent_wherever_it_ran() {
    let pg = Postgres::start();
    let url = pg.database("chain");
    let chain = r#"
defaults: { model: kling-v2.5-turbo-text-to-video-pro, duration_seconds: 5 }
prompts:
  - id: base
    prompt: "a paper boat on a {place}"
    vars: { place: [street, canal, river, lake] }
  - { id: longer, needs: base, endpoint: extend_video, prompt: "it reaches a waterfall" }
"#;
    let env = TestEnv::new(|c| c.time_scale = 100.0, chain).await;
    let extra = ["--concurrency", "2"];
    let (a, b) = (worker(&env, &url, &extra), worker(&env, &url, &extra));
    assert_eq!(exit_code(a).await, Some(0));
    assert_eq!(exit_code(b).await, Some(0));
    check_once(&env, 8);
    let counters = env.sim.stats().counters;
    assert_eq!(
        (counters.continuations_not_ready, counters.continuations_unusable),
        (0, 0),
        "no step was sent before its parent completed, nor with another task"
    );
    let rows = env.results();
    let task_of: std::collections::HashMap<&str, &str> = rows
        .iter()
        .map(|r| (r["job_id"].as_str(), r["task_id"].as_str()))
        .collect();
    let sources: std::collections::HashMap<String, Option<String>> = env
        .sim
        .timings()
        .into_iter()
        .map(|t| (t.id, t.source_task_id))
        .collect();
    for row in rows.iter().filter(|r| !r["parent_job_id"].is_empty()) {
        assert_eq!(
            sources[&row["task_id"]].as_deref(),
            Some(task_of[row["parent_job_id"].as_str()]),
            "{} continued its parent's task",
            row["job_id"]
        );
    }
}

/// Issue 25: a paid video the worker may not fetch (over `--max-video-bytes`) is never "failed" in
/// the database either: every view agrees it is a download to do, and the next worker with a
/// larger limit fetches it without creating anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_video_over_the_size_cap_stays_claimable_and_every_view_agrees() {
    let pg = Postgres::start();
    let url = pg.database("toolarge");
    let env = TestEnv::new(|c| c.time_scale = 1000.0, crate::common::TWELVE_JOBS).await;
    let first = worker(&env, &url, &["--max-video-bytes", "1000"])
        .wait_with_output()
        .await
        .unwrap();
    let said = String::from_utf8_lossy(&first.stderr).into_owned();
    assert_eq!(first.status.code(), Some(5), "{said}");
    assert_eq!(
        pg.sql("toolarge", "select count(*) from kb_jobs where state = 'completed'"),
        "12",
        "paid, claimable: {said}"
    );
    assert_eq!(
        pg.sql("toolarge", "select count(*) from kb_jobs where state = 'failed'"),
        "0"
    );
    let status = crate::common::run(&["status", env.out.to_str().unwrap(), "--state", &url, "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(status["states"], serde_json::json!({"downloading": 12}), "{status:#}");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["states"], status["states"]);
    assert!(env.results().iter().all(|r| r["status"] == "downloading"));
    env.check_money(None);
    let created = env.sim.stats().counters.tasks_created;
    let second = worker(&env, &url, &[]).wait_with_output().await.unwrap();
    assert_eq!(
        second.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert_eq!(env.sim.stats().counters.tasks_created, created, "nothing created again");
    check_once(&env, 12);
}
