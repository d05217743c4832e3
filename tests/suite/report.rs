//! What users read after a run: the summary, `status` (text and JSON), `summary.json`, and the
//! plain progress lines — snapshotted from a deterministic run (one job at a time, seeded faults).

use crate::common::{TWELVE_JOBS, TestEnv};
use serde_json::Value;

fn redact(text: &str, env: &TestEnv) -> String {
    let dir = env.dir.path().display().to_string();
    let mut out = text.replace(&dir, "[DIR]").replace(env.sim.base_url(), "[SIMULATOR]");
    let wall = regex_lite_wall(&out);
    if let Some(w) = wall {
        out = out.replace(&w, "wall time [T] s");
    }
    out
}

/// Replaces the one "wall time N.N s" in a summary.
fn regex_lite_wall(text: &str) -> Option<String> {
    let start = text.find("wall time ")?;
    let end = text[start..].find(" s ·")? + start + 2;
    Some(text[start..end].to_string())
}

async fn capped_run() -> (TestEnv, String, Option<i32>) {
    let env = TestEnv::new(
        |c| {
            c.seed = 3;
            c.faults.task_failure_rate = 0.3;
        },
        TWELVE_JOBS,
    )
    .await;
    let out = env
        .run(&["--max-spend", "4.00", "--concurrency", "1", "--max-attempts", "1"])
        .await;
    (env, out.stderr, out.code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summary_status_and_progress_read_well() {
    let (env, stderr, code) = capped_run().await;
    assert_eq!(code, Some(8), "{stderr}");
    let summary: String = stderr
        .lines()
        .filter(|l| !l.starts_with("progress:"))
        .collect::<Vec<_>>()
        .join("\n");
    insta::assert_snapshot!("summary_after_cap", redact(&summary, &env));
    let last_progress = stderr
        .lines()
        .filter(|l| l.starts_with("progress:"))
        .last()
        .expect("plain progress lines");
    insta::assert_snapshot!("last_progress_line", last_progress);

    let out = crate::common::run(&["status", env.out.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    insta::assert_snapshot!("status_text", redact(&out.stdout, &env));
    let out = crate::common::run(&["status", env.out.to_str().unwrap(), "--json"]);
    let mut json: Value = serde_json::from_str(&out.stdout).unwrap();
    json["folder"] = "[DIR]".into();
    json["manifest"] = "[MANIFEST]".into();
    insta::assert_json_snapshot!("status_json", json);

    let summary: Value = serde_json::from_slice(&std::fs::read(env.out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["exit_code"], 8);
    assert_eq!(summary["stop_reason"], "spend_cap");
    assert_eq!(summary["jobs"], 12);
    assert_eq!(summary["states"], json["states"], "summary.json and status agree");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_refuses_a_folder_that_is_not_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = crate::common::run(&["status", dir.path().to_str().unwrap()]);
    assert_eq!(out.code, 4);
    assert!(
        out.stderr.contains("is not a kling-batch output folder"),
        "{}",
        out.stderr
    );
}
