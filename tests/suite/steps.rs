//! Steps (issue 17): jobs that continue other jobs' videos (`needs:`), planned once per parent
//! job, created only after the parent completed, skipped when it failed — against the simulator,
//! which refuses a continuation of a task that is not completed (and counts the attempts).

use crate::common::{TestEnv, plan_from_yaml};
use kling_batch::sim::{Faults, TaskTiming};
use std::collections::HashMap;

/// Three bases, each extended, each extension extended again: 9 jobs, 3 chains of 3.
const CHAIN: &str = r#"
defaults: { model: kling-v2.5-turbo-text-to-video-pro, duration_seconds: 5 }
prompts:
  - id: base
    prompt: "a paper boat on a {place}"
    vars: { place: [street, canal, river] }
  - { id: longer, needs: base, endpoint: extend_video, prompt: "it reaches a waterfall" }
  - { id: longest, needs: longer, endpoint: extend_video, prompt: "it sails out to sea" }
"#;

type Row = HashMap<String, String>;

/// Every task the simulator made, by id.
fn tasks(env: &TestEnv) -> HashMap<String, TaskTiming> {
    env.sim.timings().into_iter().map(|t| (t.id.clone(), t)).collect()
}

/// Each completed step continued its parent's task, and its video is one clip longer.
fn check_links(env: &TestEnv, rows: &[Row], clip_bytes: u64) {
    let by_id: HashMap<&str, &Row> = rows.iter().map(|r| (r["job_id"].as_str(), r)).collect();
    let tasks = tasks(env);
    for row in rows.iter().filter(|r| r["status"] == "completed") {
        let task = &tasks[&row["task_id"]];
        assert_eq!(task.client_request_id.as_deref(), Some(row["job_id"].as_str()));
        let depth = match row["step"].as_str() {
            "base" => 1,
            "longer" => 2,
            "longest" => 3,
            other => panic!("unexpected step {other}"),
        };
        assert_eq!(row["bytes"], (depth * clip_bytes).to_string(), "{}", row["job_id"]);
        if depth == 1 {
            assert_eq!(row["parent_job_id"], "");
            assert_eq!(task.source_task_id, None);
            continue;
        }
        let parent = by_id[row["parent_job_id"].as_str()];
        let expected_parent_step = if depth == 2 { "base" } else { "longer" };
        assert_eq!(parent["step"], expected_parent_step, "{row:?}");
        assert_eq!(parent["status"], "completed", "a step ran after its parent completed");
        assert_eq!(
            task.source_task_id.as_deref(),
            Some(parent["task_id"].as_str()),
            "{} continued its own parent's task",
            row["job_id"]
        );
    }
}

/// No job made more than one task (a resend replays; a refused continuation makes none).
fn check_created_once(env: &TestEnv) {
    let stats = env.sim.stats();
    for (job, created) in &stats.counters.creates_per_client_request_id {
        assert_eq!(*created, 1, "{job} made {created} tasks");
    }
    assert_eq!(
        stats.counters.conflicts, 0,
        "every resend was byte for byte the first send"
    );
}

#[test]
fn the_plan_makes_each_step_once_per_parent_job_and_shows_the_tree() {
    // The matrix's aspect ratio doubles the bases; extend_video does not take it, so it does not
    // double the steps again: 6 + 6 + 6. `repeat: 2` gives each base request two samples, and
    // each sample its own chain.
    let text = format!("{CHAIN}matrix: {{ aspect_ratio: [\"16:9\", \"9:16\"] }}\nrepeat: 2\n");
    let plan = plan_from_yaml(&text).unwrap();
    let tree = plan.step_tree();
    let counts: Vec<(&str, usize, usize)> = tree.iter().map(|r| (r.step.as_str(), r.depth, r.jobs)).collect();
    assert_eq!(counts, [("base", 0, 12), ("longer", 1, 12), ("longest", 2, 12)]);
    let total: u64 = plan.jobs.iter().map(|j| j.estimate.cost.micro_cents()).sum();
    let by_step: u64 = tree.iter().map(|r| r.estimate.micro_cents()).sum();
    assert_eq!(total, by_step, "the estimate counts every step");
    // Every step names its parent in the request, and its parent comes first in the plan.
    for (i, job) in plan.jobs.iter().enumerate() {
        let source = job.request.get("source_task_id");
        match job.parent {
            None => assert_eq!(source, None),
            Some(p) => {
                assert!(p < i);
                assert_eq!(
                    source.and_then(|s| s.as_str().map(str::to_string)),
                    Some(format!("kb-parent://{}", plan.jobs[p].id))
                );
                assert!(job.request.get("aspect_ratio").is_none());
            }
        }
    }

    // A step's id follows its entry and its parent: editing one base's prompt renames that
    // base's chain and nothing else.
    let before = plan_from_yaml(CHAIN).unwrap();
    let after = plan_from_yaml(&CHAIN.replace("street", "harbour")).unwrap();
    let ids = |p: &kling_batch::plan::Plan| p.jobs.iter().map(|j| j.id.to_string()).collect::<Vec<_>>();
    let (a, b) = (ids(&before), ids(&after));
    let kept = a.iter().filter(|id| b.contains(id)).count();
    assert_eq!(kept, 6, "the two untouched chains keep their ids: {a:?} / {b:?}");
    assert!(a.iter().all(|id| id.starts_with("base-") || id.starts_with("long")));

    // `plan` prints the tree; a CSV manifest names the parent in a `needs` column.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chain.yaml");
    std::fs::write(&path, CHAIN).unwrap();
    let out = crate::common::run(&["plan", path.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("9 jobs"), "{}", out.stdout);
    assert!(out.stdout.contains("    longer "), "{}", out.stdout);
    assert!(out.stdout.contains("(continues `longer`)"), "{}", out.stdout);
    let csv = dir.path().join("chain.csv");
    std::fs::write(
        &csv,
        "id,needs,endpoint,model,prompt\nbase,,text_to_video,kling-v2.5-turbo-text-to-video-pro,a boat\nlonger,base,extend_video,,and on\n",
    )
    .unwrap();
    let out = crate::common::run(&["plan", csv.to_str().unwrap(), "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["steps"][1]["needs"], "base");
    assert_eq!(doc["jobs"][1]["parent"], doc["jobs"][0]["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_step_chain_completes_each_step_after_its_parent() {
    let env = TestEnv::new(|c| c.video_bytes = 40_000, CHAIN).await;
    let out = env.run(&[]).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    env.check_invariants(None);
    let stats = env.sim.stats();
    assert_eq!(stats.counters.tasks_created, 9);
    assert_eq!(
        (
            stats.counters.continuations_not_ready,
            stats.counters.continuations_unusable
        ),
        (0, 0),
        "the simulator never saw a continuation of a task that had not completed"
    );
    let rows = env.results();
    assert_eq!(rows.len(), 9);
    check_links(&env, &rows, 40_000);
    check_created_once(&env);
    // `status` counts per step; the gallery shows each chain in order.
    let status = crate::common::run(&["status", env.out.to_str().unwrap()]);
    assert!(status.stdout.contains("by step:"), "{}", status.stdout);
    assert!(status.stdout.contains("    longest  3 completed"), "{}", status.stdout);
    let html = std::fs::read_to_string(env.out.join("report.html")).unwrap();
    assert_eq!(html.matches("<div class=\"chain\">").count(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_chain_then_resume_creates_every_step_once() {
    let env = TestEnv::new(
        |c| {
            c.seed = 17;
            c.video_bytes = 30_000;
            // Slow enough (tasks of 0.3–1.2 s) that the chain is killed at every stage.
            c.time_scale = 100.0;
            c.faults = Faults {
                drop_after_create_rate: 0.2,
                server_error_rate: 0.03,
                truncate_download_rate: 0.2,
                not_found_reads: 1,
                continuation_not_ready_rate: 0.3,
                ..Faults::default()
            };
        },
        CHAIN,
    )
    .await;
    let mut rng = kling_batch::util::rng::Rng::new(9);
    let mut kills = 0;
    for _ in 0..40 {
        let mut child = env.command(&["--concurrency", "3"]).spawn().unwrap();
        let moment = std::time::Duration::from_millis(rng.between(20.0, 300.0) as u64);
        tokio::select! {
            status = child.wait() => {
                let code = status.unwrap().code();
                assert!(matches!(code, Some(0 | 5)), "a run between kills ended with {code:?}");
                if code == Some(0) {
                    break;
                }
            }
            _ = tokio::time::sleep(moment) => {
                child.start_kill().unwrap();
                child.wait().await.unwrap();
                kills += 1;
            }
        }
    }
    assert!(
        kills >= 3,
        "the chain finished before it could be killed ({kills} kills)"
    );
    let mut out = env.run(&[]).await;
    for _ in 0..3 {
        if out.code != Some(5) {
            break;
        }
        out = env.run(&[]).await;
    }
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    env.check_invariants(None);
    let rows = env.results();
    assert!(rows.iter().all(|r| r["status"] == "completed"), "{rows:?}");
    check_links(&env, &rows, 30_000);
    check_created_once(&env);
    assert_eq!(env.sim.stats().counters.tasks_created, 9);
    eprintln!("kills during the chain: {kills}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parents_that_fail_leave_their_steps_skipped_and_a_retry_runs_them() {
    // Six bases, half of which fail on their one attempt (the simulator's seed decides which).
    let manifest = CHAIN.replace("[street, canal, river]", "[street, canal, river, lake, sea, pond]");
    let env = TestEnv::new(
        |c| {
            c.seed = 3;
            c.faults = Faults {
                task_failure_rate: 0.5,
                ..Faults::default()
            };
        },
        &manifest,
    )
    .await;
    let out = env.run(&["--max-attempts", "1"]).await;
    assert_eq!(out.code, Some(7), "{}", out.stderr);
    env.check_invariants(None);
    let rows = env.results();
    let failed: Vec<&Row> = rows.iter().filter(|r| r["status"] == "failed").collect();
    let skipped: Vec<&Row> = rows.iter().filter(|r| r["status"] == "skipped").collect();
    assert!(!failed.is_empty() && failed.len() < rows.len(), "{rows:?}");
    let stats = env.sim.stats();
    assert_eq!(
        stats.counters.continuations_unusable, 0,
        "no step of a failed task was sent"
    );
    let created: std::collections::HashSet<String> =
        stats.counters.creates_per_client_request_id.keys().cloned().collect();
    for row in &skipped {
        assert!(
            !created.contains(&row["job_id"]),
            "{} was skipped, never created",
            row["job_id"]
        );
        assert!(row["error"].starts_with("parent failed (task_failed"), "{row:?}");
        assert_eq!(row["task_id"], "");
    }
    // Every step of a failed parent (and their steps) is skipped; no other job is.
    let by_id: HashMap<&str, &Row> = rows.iter().map(|r| (r["job_id"].as_str(), r)).collect();
    for row in &rows {
        let parent = by_id.get(row["parent_job_id"].as_str());
        let parent_gone = parent.is_some_and(|p| p["status"] == "failed" || p["status"] == "skipped");
        assert_eq!(row["status"] == "skipped", parent_gone, "{row:?}");
    }
    assert!(out.stderr.contains("skipped (parent failed)"), "{}", out.stderr);
    assert!(
        out.stderr.contains("× skipped: parent failed (task_failed"),
        "{}",
        out.stderr
    );

    // `--retry-failed` gives the failed parents new attempts, and their steps run after them.
    env.sim.set_faults(Faults::default());
    let again = env.run(&["--retry-failed", "--max-attempts", "1"]).await;
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    env.check_invariants(None);
    let rows = env.results();
    assert!(rows.iter().all(|r| r["status"] == "completed"), "{rows:?}");
    check_links(&env, &rows, 50_000);
    check_created_once_per_success(&env, &rows);
}

/// With failed attempts in the history, a job may have made a failed task before its completed
/// one: each job made at most one task per attempt, and its completed task once.
fn check_created_once_per_success(env: &TestEnv, rows: &[Row]) {
    let stats = env.sim.stats();
    for row in rows {
        let created = stats.counters.creates_per_client_request_id[&row["job_id"]];
        let attempts: u64 = row["attempts"].parse().unwrap();
        assert!(created <= attempts, "{row:?} made {created} tasks");
    }
    assert_eq!(stats.counters.conflicts, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_the_service_does_not_see_ready_yet_is_tried_again_with_a_new_key() {
    let env = TestEnv::new(
        |c| {
            c.seed = 11;
            c.faults = Faults {
                continuation_not_ready_rate: 0.5,
                ..Faults::default()
            };
        },
        CHAIN,
    )
    .await;
    let out = env.run(&[]).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    env.check_invariants(None);
    let stats = env.sim.stats();
    assert!(stats.counters.continuations_not_ready > 0, "the fault struck");
    let rows = env.results();
    check_links(&env, &rows, 50_000);
    check_created_once(&env);
    assert!(
        rows.iter()
            .any(|r| r["step"] != "base" && r["attempts"].parse::<u32>().unwrap() > 1),
        "a step refused as not ready went again under a new attempt"
    );
}

/// `run --simulate` killed while the bases generate, then resumed: the resumed run's simulator
/// never saw those tasks (it adopts them when asked about them), and the steps continue them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulated_chain_resumed_after_a_kill_continues_the_tasks_made_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("chain");
    let manifest = crate::common::repo_root().join("manifests/chain.yaml");
    let run = || {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_kling-batch"));
        cmd.args([
            "run",
            manifest.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--simulate",
        ])
        .env_remove("RUNAPI_API_KEY")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
        cmd
    };
    let mut child = run().spawn().unwrap();
    let journal = out.join("journal.jsonl");
    // Killed once a base task exists, before any step could be sent.
    crate::common::wait_until(std::time::Duration::from_secs(60), "a base task to be created", || {
        std::fs::read_to_string(&journal)
            .unwrap_or_default()
            .contains("\"t\":\"submitted\"")
    })
    .await;
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    let resumed = run().output().await.unwrap();
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert_eq!(resumed.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("12 jobs: 12 completed"), "{stderr}");
    // The simulators live in the runs: the spend reported is every job at its price, once.
    let plan = kling_batch::plan::expand(&kling_batch::manifest::load(&manifest).unwrap()).unwrap();
    let priced: f64 = plan.jobs.iter().map(|j| j.estimate.cost.usd()).sum();
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    let spent = summary["spent_usd"].as_f64().unwrap();
    assert!(
        (spent - priced).abs() < 1e-6,
        "reported ${spent}, the jobs cost ${priced}"
    );
}
