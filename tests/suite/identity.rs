//! A sweep is one sweep whatever its path and whatever its database forgets (issue 36): its
//! folder's `sweep.json` names it. Real PostgreSQL, real worker processes, a real second path to
//! the folder (a symlink), and the database dropped and made again.

use crate::common::TestEnv;
use crate::pg::Postgres;
use crate::shared::check_once;

/// 8 jobs of 5 s at 720p on kling-3.0: $0.70 each.
const EIGHT: &str = r#"
defaults: { model: kling-3.0, duration_seconds: 5 }
prompts: ["a lake", "a river", "a sea", "a forest"]
matrix: { aspect_ratio: ["16:9", "9:16"] }
"#;

fn args(url: &str) -> Vec<&str> {
    vec!["--state", url, "--lease", "2s", "--max-spend", "none"]
}

async fn output(mut cmd: tokio::process::Command) -> (Option<i32>, String) {
    let out = cmd.output().await.expect("the worker runs");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_folder_under_a_second_path_is_the_same_sweep() {
    let pg = Postgres::start();
    let url = pg.database("two_paths");
    let env = TestEnv::new(|c| c.time_scale = 100.0, EIGHT).await;
    let (code, stderr) = output(env.command(&args(&url))).await;
    assert_eq!(code, Some(0), "{stderr}");
    let marker: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(env.out.join("sweep.json")).unwrap()).unwrap();
    assert!(marker["run_id"].is_string(), "the marker records the run id: {marker}");
    // The same folder reached by another path, as a second machine mounting one share would.
    let alias = env.dir.path().join("mounted-elsewhere");
    std::os::unix::fs::symlink(&env.out, &alias).unwrap();
    let (code, stderr) = output(env.command_to(alias.as_os_str(), &args(&url))).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("joining sweep"),
        "the second path joins the sweep: {stderr}"
    );
    let sweeps = pg.sql("two_paths", "select count(*) from kb_sweeps");
    assert_eq!(sweeps, "1", "one sweep in the database");
    check_once(&env, 8);
    let after: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(env.out.join("sweep.json")).unwrap()).unwrap();
    assert_eq!(after, marker, "the marker is the folder's identity: never rewritten");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_forgot_the_sweep_is_refused_then_adopted_without_paying_twice() {
    let pg = Postgres::start();
    let url = pg.database("forgot");
    let env = TestEnv::new(|c| c.time_scale = 40.0, EIGHT).await;
    let mut worker = env.command(&args(&url)).spawn().unwrap();
    crate::common::wait_until(std::time::Duration::from_secs(120), "3 jobs finished", || {
        pg.try_sql("forgot", "select count(*) from kb_jobs where state = 'finished'")
            .ok()
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|n| n >= 3)
    })
    .await;
    worker.kill().await.unwrap();
    let _ = worker.wait().await;
    // The database goes back to before the sweep: dropped and made again, empty.
    pg.sql("postgres", "drop database forgot with (force)");
    let url = pg.database("forgot");
    let created = env.sim.stats().counters.tasks_created;
    let (code, stderr) = output(env.command(&args(&url))).await;
    assert_eq!(code, Some(4), "{stderr}");
    assert!(
        stderr.contains("has no sweep") && stderr.contains("--adopt-folder"),
        "the regression is reported with the way out: {stderr}"
    );
    assert_eq!(env.sim.stats().counters.tasks_created, created, "nothing was sent");
    // Registered again on purpose: under the folder's run id, every create replays the first.
    let mut adopt = args(&url);
    adopt.push("--adopt-folder");
    let (code, stderr) = output(env.command(&adopt)).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("registering it again under the run id"), "{stderr}");
    check_once(&env, 8);
}
