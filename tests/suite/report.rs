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
        .rfind(|l| l.starts_with("progress:"))
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
    env.check_money(Some(4.00));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_key_appears_in_no_log_line_no_file_and_no_other_origin() {
    let canary = "sk-canary-7f3a9c1e5b";
    let env = TestEnv::new(
        |c| {
            c.api_key = canary.into();
            c.separate_file_origin = true;
            c.faults = kling_batch::sim::Faults {
                server_error_rate: 0.05,
                drop_after_create_rate: 0.1,
                task_failure_rate: 0.1,
                truncate_download_rate: 0.2,
                rate_limit_per_second: Some(200.0),
                rate_limit_burst: 5.0,
                ..Default::default()
            };
        },
        TWELVE_JOBS,
    )
    .await;
    let log = env.out.join("run.log");
    std::fs::create_dir_all(&env.out).unwrap();
    let out = env
        .command(&["-vvv", "--log-file", log.to_str().unwrap()])
        .env("RUST_LOG", "trace")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(matches!(out.status.code(), Some(0 | 7)), "{stderr}");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.lines().count() > 50, "trace logging wrote a real log");
    assert!(logged.contains("TRACE"), "at trace level");
    assert!(!stderr.contains(canary), "the key is in stderr");
    let mut files = vec![env.out.clone()];
    let mut checked = 0;
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes.windows(canary.len()).any(|w| w == canary.as_bytes()),
            "the key is in {}",
            path.display()
        );
        checked += 1;
    }
    assert!(
        checked >= 15,
        "journal, results, summary, manifest, log and videos were checked ({checked})"
    );
    let stats = env.sim.stats();
    assert!(stats.counters.file_requests > 0);
    assert_eq!(
        stats.counters.file_requests_with_authorization, 0,
        "the key never reached the file origin"
    );
    assert!(!logged.contains("sig="), "signed URL queries stay out of the log");
    env.check_invariants(None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gallery_has_a_cell_per_job_and_escapes_prompt_text() {
    let manifest = r#"
defaults: { model: kling-3.0, duration_seconds: 5 }
prompts: ["<script>alert(1)</script> a lake", "=HYPERLINK(\"x\") a river", "a sea & a storm"]
matrix: { aspect_ratio: ["16:9", "9:16"] }
"#;
    let env = TestEnv::new(
        |c| {
            c.seed = 9;
            c.faults.task_failure_rate = 0.4;
        },
        manifest,
    )
    .await;
    let out = env.run(&["--max-attempts", "1", "--concurrency", "1"]).await;
    assert!(matches!(out.code, Some(0 | 7)), "{}", out.stderr);
    let page = std::fs::read_to_string(env.out.join("report.html")).expect("run writes report.html");
    let rows = env.results();
    let completed = rows.iter().filter(|r| r["status"] == "completed").count();
    let failed = rows.iter().filter(|r| r["status"] == "failed").count();
    assert_eq!(page.matches("<figure class=\"cell").count(), 6);
    assert_eq!(page.matches("<video ").count(), completed);
    assert_eq!(page.matches("class=\"cell failed\"").count(), failed);
    assert!(
        failed > 0 && completed > 0,
        "both kinds of cell are shown ({completed} completed, {failed} failed)"
    );
    env.check_invariants(None);
    assert!(!page.contains("<script>alert"), "prompt text is escaped");
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "the page loads nothing from the network"
    );

    // `report` rewrites it with other axes.
    std::fs::remove_file(env.out.join("report.html")).unwrap();
    let out = crate::common::run(&[
        "report",
        env.out.to_str().unwrap(),
        "--rows",
        "aspect_ratio",
        "--columns",
        "prompt",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let page = std::fs::read_to_string(env.out.join("report.html")).unwrap();
    assert_eq!(
        page.matches("<th class=\"row\">").count(),
        2,
        "one row per aspect ratio"
    );
    assert_eq!(page.matches("<figure class=\"cell").count(), 6);
}
