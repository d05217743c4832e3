//! What a new user trips over (issue 14): folders taken over, a manifest that is not the
//! folder's, caps that cannot run a job.

use crate::common::{TWELVE_JOBS, TestEnv};

/// Every file in `dir` with its bytes, sorted by path.
fn snapshot(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            files.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    files.sort();
    files
}

/// Item 1: `--out` pointing at a folder of the user's own files is refused, exit 4, and the
/// folder is byte-identical afterwards; nothing is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrelated_folder_is_refused_and_left_byte_identical() {
    let env = TestEnv::new(|_| {}, TWELVE_JOBS).await;
    std::fs::create_dir_all(env.out.join("notes")).unwrap();
    std::fs::write(env.out.join("results.csv"), "name,score\nalice,3\n").unwrap();
    std::fs::write(env.out.join("notes/todo.txt"), "buy milk").unwrap();
    let before = snapshot(&env.out);
    let out = env.run(&[]).await;
    assert_eq!(out.code, Some(4), "{}", out.stderr);
    assert!(out.stderr.contains("not a kling-batch run folder"), "{}", out.stderr);
    assert_eq!(snapshot(&env.out), before, "the folder is untouched");
    assert_eq!(env.sim.stats().requests_total(), 0, "nothing was sent");
}

/// Item 2: another manifest into a run folder is refused with a hint; the same manifest edited
/// keeps working; `--adopt-folder` adopts the folder knowingly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_folder_belongs_to_its_manifest_file() {
    let env = TestEnv::new(|_| {}, TWELVE_JOBS).await;
    assert_eq!(env.run(&[]).await.code, Some(0));
    let rows = env.results().len();
    let other = env.dir.path().join("other.yaml");
    std::fs::write(
        &other,
        "defaults: { model: kling-3.0 }\nprompts: [\"a glacier at noon\"]\n",
    )
    .unwrap();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_kling-batch"));
    cmd.args(["run", other.to_str().unwrap(), "--out", env.out.to_str().unwrap()])
        .args([
            "--api-base",
            env.sim.base_url(),
            "--time-scale",
            "1000",
            "--rate",
            "400",
        ])
        .env("RUNAPI_API_KEY", env.sim.api_key())
        .env("RUNAPI_CONFIG_DIR", env.dir.path().join("no-config"))
        .env_remove("RUNAPI_BASE_URL")
        .stdin(std::process::Stdio::null());
    let out = cmd.output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("is the run folder of") && stderr.contains("--adopt-folder"),
        "{stderr}"
    );
    assert_eq!(env.results().len(), rows, "results.csv untouched");
    assert_eq!(env.sim.stats().counters.tasks_created, 12);
    // The same manifest, edited: still its folder.
    std::fs::write(
        &env.manifest,
        TWELVE_JOBS.replace("a forest at night", "a forest at dusk"),
    )
    .unwrap();
    assert_eq!(env.run(&[]).await.code, Some(0));
    // Adopted knowingly.
    let adopted = cmd.arg("--adopt-folder").output().await.unwrap();
    assert_eq!(
        adopted.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&adopted.stderr)
    );
    env.check_invariants(None);
}

/// Item 6: a cap below the cheapest job is refused before anything is written, naming the cap
/// that runs one job and the one that runs them all; a capped stop says what cap would finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_impossible_cap_is_refused_before_anything_is_written() {
    let env = TestEnv::new(|_| {}, TWELVE_JOBS).await;
    let out = env.run(&["--max-spend", "0.50"]).await;
    assert_eq!(out.code, Some(4), "{}", out.stderr);
    assert!(out.stderr.contains("cannot run a single job"), "{}", out.stderr);
    assert!(
        out.stderr.contains("--max-spend 0.70 runs one job") && out.stderr.contains("--max-spend 8.40 runs all 12"),
        "{}",
        out.stderr
    );
    assert!(!env.out.exists(), "nothing was written");
    assert_eq!(env.sim.stats().requests_total(), 0, "nothing was sent");
    // A cap that runs some: the summary names the cap that finishes.
    let out = env.run(&["--max-spend", "4.20"]).await;
    assert_eq!(out.code, Some(8), "{}", out.stderr);
    assert!(out.stderr.contains("rerun with --max-spend 8.40"), "{}", out.stderr);
    env.check_money(Some(4.20));
    // Resumed with a cap below what is committed plus a job: stopped by the cap (8), nothing sent.
    let creates = env.sim.stats().counters.tasks_created;
    let out = env.run(&["--max-spend", "4.50"]).await;
    assert_eq!(out.code, Some(8), "{}", out.stderr);
    assert!(out.stderr.contains("already billed or reserved"), "{}", out.stderr);
    assert_eq!(env.sim.stats().counters.tasks_created, creates);
}

/// Item 4: failed jobs can be retried — all of them (`--retry-failed`), those whose reason
/// matches (`--retry-failed=PATTERN`), or by raising `--max-attempts` — with new keys, never
/// paying twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_jobs_can_be_retried() {
    let env = TestEnv::new(
        |c| {
            c.seed = 41;
            c.faults.task_failure_rate = 1.0;
        },
        TWELVE_JOBS,
    )
    .await;
    let out = env.run(&["--max-attempts", "1"]).await;
    assert_eq!(out.code, Some(7), "{}", out.stderr);
    let again = env.run(&["--max-attempts", "1"]).await;
    assert_eq!(again.code, Some(7), "a plain rerun leaves failures alone");
    assert_eq!(env.sim.stats().counters.tasks_created, 12);
    env.sim.set_faults(kling_batch::sim::Faults::default());

    // Only the moderation failures.
    let moderated = env
        .results()
        .iter()
        .filter(|r| r["error"].contains("moderation"))
        .count();
    assert!(
        moderated > 0 && moderated < 12,
        "a mix of reasons ({moderated} moderated)"
    );
    let out = env.run(&["--max-attempts", "1", "--retry-failed=MODERATION"]).await;
    assert_eq!(out.code, Some(7), "{}", out.stderr);
    assert_eq!(env.sim.stats().counters.tasks_created as usize, 12 + moderated);
    let done = env.results().iter().filter(|r| r["status"] == "completed").count();
    assert_eq!(done, moderated);

    // A raised --max-attempts gives the rest the difference.
    let out = env.run(&["--max-attempts", "2"]).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    env.check_invariants(None);
    assert_eq!(env.sim.stats().counters.tasks_created, 24);
    for (job, creates) in &env.sim.stats().counters.creates_per_client_request_id {
        assert_eq!(*creates, 2, "{job}: one failed task, one new attempt with a new key");
    }
}

/// `--retry-failed` with no pattern retries every failure, each with `--max-attempts` new tries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_failed_retries_every_failure() {
    let env = TestEnv::new(|c| c.faults.task_failure_rate = 1.0, TWELVE_JOBS).await;
    assert_eq!(env.run(&["--max-attempts", "2"]).await.code, Some(7));
    env.sim.set_faults(kling_batch::sim::Faults::default());
    let out = env.run(&["--max-attempts", "2", "--retry-failed"]).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    env.check_invariants(None);
    assert_eq!(env.sim.stats().counters.tasks_created, 36);
}

/// Item 5: a service without the account routes (404) is run against without the key and
/// balance checks; a refused key is found before anything is written (see the run suite).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_without_account_routes_runs_unchecked() {
    let env = TestEnv::new(
        |c| {
            c.faults.no_account_routes = true;
            c.balance_cents = 300;
        },
        TWELVE_JOBS,
    )
    .await;
    let out = env.run(&["--concurrency", "2"]).await;
    // No balance to check against: the run goes ahead and meets the 402 instead.
    assert_eq!(out.code, Some(3), "{}", out.stderr);
    assert!(out.stderr.contains("out of credits"), "{}", out.stderr);
    let stats = env.sim.stats();
    assert_eq!(stats.requests_to("GET /api/v1/me"), 1);
    assert!(stats.counters.tasks_created >= 4);
    env.check_money(None);
}

/// Item 9: `run --help` groups the run's options apart from the global ones and ends with
/// examples; `sim --help` shows its defaults; the end summary names report.html.
#[test]
fn help_groups_options_and_shows_examples_and_defaults() {
    let run = crate::common::run(&["run", "--help"]);
    assert_eq!(run.code, 0);
    for heading in [
        "Spending and pace:",
        "Retries and deadlines:",
        "Downloads:",
        "The output folder:",
        "Global options:",
        "Examples:",
    ] {
        assert!(run.stdout.contains(heading), "{heading} missing:\n{}", run.stdout);
    }
    let global = run.stdout.find("Global options:").unwrap();
    assert!(run.stdout[global..].contains("--log-file") && !run.stdout[..global].contains("--log-file"));
    let sim = crate::common::run(&["sim", "--help"]);
    assert!(
        sim.stdout.contains("[default: 100000") && sim.stdout.contains("[default: 8787]"),
        "{}",
        sim.stdout
    );
}

/// Item 7: without `--max-spend` a run is capped at the estimate it prints at its start, so a
/// service billing above its quotes is stopped there; `--max-spend none` lifts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_cap_is_the_estimate() {
    let env = TestEnv::new(|c| c.faults.bill_factor = 3.0, TWELVE_JOBS).await;
    let out = env.run(&["--concurrency", "1"]).await;
    assert_eq!(out.code, Some(8), "{}", out.stderr);
    assert!(out.stderr.contains("capped at the estimate, $8.40"), "{}", out.stderr);
    let billed = env.sim.stats().billed_usd;
    assert!(billed <= 8.40 + 1e-9 && billed > 0.0, "billed ${billed}");
    env.check_money(Some(8.40));
    // The resume makes the default again from what is left; lifted, it finishes.
    let out = env.run(&["--concurrency", "1", "--max-spend", "none"]).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    env.check_invariants(None);
    let status = crate::common::run(&["status", env.out.to_str().unwrap(), "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(status["cap_usd"], serde_json::Value::Null, "lifted: {status}");
}
