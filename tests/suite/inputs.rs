//! Local files in media fields (issue 16), at plan time: patterns as an axis, ids by content,
//! and every bad input refused at its place before anything is spent.

use crate::common::{TestEnv, run};
use serde_json::Value;
use std::path::Path;

/// A small but real-looking PNG: the signature, then bytes that make each file different.
pub(crate) fn png(tag: &str) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend_from_slice(format!("IHDR {tag} ").repeat(20).as_bytes());
    bytes
}

const SWEEP: &str = r#"defaults: { endpoint: image_to_video, model: kling-v2.6, mode: pro }
prompts:
  - id: product
    prompt: "the product turns slowly on a table"
    first_frame_image_url: photos/*.png
  - id: hero
    prompt: "the hero shot, pulled back"
    first_frame_image_url: hero.png
matrix: { duration_seconds: [5, 10] }
"#;

fn plan_json(manifest: &Path) -> Value {
    let out = run(&["plan", manifest.to_str().unwrap(), "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    serde_json::from_str(&out.stdout).unwrap()
}

fn ids(plan: &Value) -> Vec<String> {
    plan["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_pattern_is_an_axis_and_ids_follow_content_not_touches() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("photos")).unwrap();
    for name in ["mug", "lamp", "chair"] {
        std::fs::write(dir.path().join(format!("photos/{name}.png")), png(name)).unwrap();
    }
    std::fs::write(dir.path().join("photos/notes.txt"), "not matched").unwrap();
    std::fs::write(dir.path().join("hero.png"), png("hero")).unwrap();
    let manifest = dir.path().join("sweep.yaml");
    std::fs::write(&manifest, SWEEP).unwrap();

    let plan = plan_json(&manifest);
    let jobs = plan["jobs"].as_array().unwrap();
    // 3 photos × 2 durations, and the hero shot × 2 durations.
    assert_eq!(jobs.len(), 8, "{plan:#}");
    let first = ids(&plan);
    for stem in ["chair", "lamp", "mug", "hero"] {
        assert_eq!(
            first.iter().filter(|id| id.contains(&format!("-{stem}-"))).count(),
            2,
            "the file's stem is in its jobs' ids: {first:?}"
        );
    }
    // Sorted by path: chair, lamp, mug.
    let written: Vec<&str> = jobs
        .iter()
        .filter_map(|j| j["params"]["first_frame_image_url"].as_str())
        .collect();
    assert_eq!(
        written,
        [
            "photos/chair.png",
            "photos/chair.png",
            "photos/lamp.png",
            "photos/lamp.png",
            "photos/mug.png",
            "photos/mug.png",
            "hero.png",
            "hero.png"
        ]
    );
    assert_eq!(plan["inputs"]["files"].as_array().unwrap().len(), 4);
    // The request names the content, never the path.
    for job in jobs {
        let url = job["request"]["first_frame_image_url"].as_str().unwrap();
        assert!(
            url.starts_with("kb-local://") && url.len() == "kb-local://".len() + 32,
            "{url}"
        );
    }
    let table = run(&["plan", manifest.to_str().unwrap()]);
    assert!(table.stdout.contains("Local files (4,"), "{}", table.stdout);
    assert!(table.stdout.contains("photos/mug.png"), "{}", table.stdout);

    // Touching a file changes nothing.
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(dir.path().join("photos/mug.png"))
        .unwrap()
        .set_modified(later)
        .unwrap();
    assert_eq!(ids(&plan_json(&manifest)), first, "a touch keeps every id");
    // Editing one makes new jobs for it alone.
    std::fs::write(dir.path().join("photos/mug.png"), png("mug, edited")).unwrap();
    let edited = ids(&plan_json(&manifest));
    let changed: Vec<&String> = edited.iter().filter(|id| !first.contains(id)).collect();
    assert_eq!(changed.len(), 2, "{changed:?}");
    assert!(changed.iter().all(|id| id.contains("-mug-")), "{changed:?}");
}

/// Runs `plan` on a manifest naming `value` in a prompt's first_frame_image_url (line 4).
fn refused(dir: &Path, value: &str, extra: &[&str]) -> String {
    let manifest = dir.join("bad.yaml");
    std::fs::write(
        &manifest,
        format!(
            "defaults: {{ endpoint: image_to_video, model: kling-v2.6, mode: pro }}\nprompts:\n  - prompt: \"a picture comes alive\"\n    first_frame_image_url: \"{value}\"\n"
        ),
    )
    .unwrap();
    let mut args = vec!["plan", manifest.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = run(&args);
    assert_eq!(out.code, 4, "{value}: {}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("bad.yaml:4:"), "{value}: the place: {}", out.stderr);
    assert!(out.stderr.contains("hint:"), "{value}: a hint: {}", out.stderr);
    out.stderr
}

#[test]
fn bad_local_inputs_are_refused_at_their_place() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("folder")).unwrap();
    std::fs::write(dir.path().join("text.png"), "hello, I am only text").unwrap();
    std::fs::write(dir.path().join("big.png"), png("big")).unwrap();
    let missing = refused(dir.path(), "nowhere.png", &[]);
    assert!(missing.contains("does not exist"), "{missing}");
    let folder = refused(dir.path(), "folder", &[]);
    assert!(folder.contains("is a folder"), "{folder}");
    let text = refused(dir.path(), "text.png", &[]);
    assert!(text.contains("does not look like a PNG, JPEG or WebP image"), "{text}");
    let nothing = refused(dir.path(), "photos/*.png", &[]);
    assert!(nothing.contains("no file matches"), "{nothing}");
    let big = refused(dir.path(), "big.png", &["--max-input-bytes", "10"]);
    assert!(big.contains("--max-input-bytes"), "{big}");
}

#[test]
fn an_unreadable_file_is_refused_at_its_place() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let secret = dir.path().join("secret.png");
    std::fs::write(&secret, png("secret")).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).unwrap();
    let manifest = dir.path().join("bad.yaml");
    std::fs::write(
        &manifest,
        "defaults: { endpoint: image_to_video, model: kling-v2.6, mode: pro }\nprompts:\n  - prompt: \"a picture comes alive\"\n    first_frame_image_url: secret.png\n",
    )
    .unwrap();
    std::fs::set_permissions(&manifest, std::fs::Permissions::from_mode(0o644)).unwrap();
    // Root reads anything: drop to nobody for this one command when the tests run as root.
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0);
    let binary = assert_cmd::cargo::cargo_bin("kling-batch");
    let mut command = if root {
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&binary);
        c
    } else {
        std::process::Command::new(&binary)
    };
    let out = command.args(["plan"]).arg(&manifest).output().expect("the binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("bad.yaml:4:") && stderr.contains("cannot be read"),
        "{stderr}"
    );
    assert!(stderr.contains("hint: check the file's permissions"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_over_local_files_uploads_each_once_and_completes() {
    let env = TestEnv::new(|c| c.separate_file_origin = true, SWEEP).await;
    std::fs::create_dir(env.dir.path().join("photos")).unwrap();
    for name in ["mug", "lamp", "chair"] {
        std::fs::write(env.dir.path().join(format!("photos/{name}.png")), png(name)).unwrap();
    }
    // The hero shot is the same picture as the mug: one upload serves both.
    std::fs::write(env.dir.path().join("hero.png"), png("mug")).unwrap();
    let out = env.run(&["--concurrency", "4", "--max-spend", "none"]).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let rows = env.results();
    assert_eq!(rows.len(), 8);
    assert!(rows.iter().all(|r| r["status"] == "completed"), "{rows:?}");
    assert!(
        rows.iter().any(|r| r["first_frame_image_url"] == "photos/lamp.png"),
        "results show the path as written: {rows:?}"
    );
    env.check_invariants(None);
    let stats = env.sim.stats();
    assert_eq!(
        stats.counters.uploads_confirmed, 3,
        "three distinct files, each uploaded once"
    );
    assert_eq!(stats.counters.upload_requests, 3);
    assert_eq!(
        stats.counters.upload_requests_with_authorization, 0,
        "the key never goes to the upload host"
    );
    assert_eq!(stats.counters.creates_with_unusable_upload, 0);
    // Every journaled intent carries the body it sent, with the upload's URL in it.
    let journal = std::fs::read_to_string(env.out.join("journal.jsonl")).unwrap();
    let intents: Vec<Value> = journal
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["type"] == "submitting" || r["kind"] == "submitting" || r.get("body").is_some())
        .collect();
    assert!(!intents.is_empty(), "{journal}");
    assert!(
        intents.iter().all(|r| r["body"]
            .as_str()
            .is_some_and(|b| b.contains("/uploaded/") && !b.contains("kb-local://"))),
        "{intents:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_that_keep_failing_fail_their_jobs_alone_and_nothing_is_created() {
    let env = TestEnv::new(|c| c.separate_file_origin = true, SWEEP).await;
    std::fs::create_dir(env.dir.path().join("photos")).unwrap();
    for name in ["mug", "lamp", "chair"] {
        std::fs::write(env.dir.path().join(format!("photos/{name}.png")), png(name)).unwrap();
    }
    std::fs::write(env.dir.path().join("hero.png"), png("hero")).unwrap();
    // Uploads fail (500) every time: the jobs fail with the reason, nothing is created.
    env.sim.set_faults(kling_batch::sim::Faults {
        upload_failure_rate: 1.0,
        ..Default::default()
    });
    let out = env.run(&["--concurrency", "8", "--max-spend", "none"]).await;
    assert_eq!(out.code, Some(7), "{}", out.stderr);
    let rows = env.results();
    assert!(rows.iter().all(|r| r["status"] == "failed"), "{rows:?}");
    assert!(rows.iter().all(|r| r["error"].contains("upload")), "{rows:?}");
    assert_eq!(env.sim.stats().counters.tasks_created, 0);
    env.check_money(None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_during_uploads_and_resumed_after_they_expired_sends_no_expired_upload() {
    // Uploads live two seconds and crawl; the run is killed while the first one is on its way.
    let env = TestEnv::new(
        |c| {
            c.separate_file_origin = true;
            c.faults.upload_ttl_seconds = 2;
            c.faults.upload_slow_ms = 300;
        },
        SWEEP,
    )
    .await;
    std::fs::create_dir(env.dir.path().join("photos")).unwrap();
    for name in ["mug", "lamp", "chair"] {
        std::fs::write(env.dir.path().join(format!("photos/{name}.png")), png(name)).unwrap();
    }
    std::fs::write(env.dir.path().join("hero.png"), png("hero")).unwrap();
    let mut child = env
        .command(&["--concurrency", "2", "--max-spend", "none"])
        .spawn()
        .unwrap();
    crate::common::wait_until(std::time::Duration::from_secs(30), "an upload to start", || {
        env.sim.stats().counters.upload_requests > 0
    })
    .await;
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    // The scenario itself: whatever was uploaded before the kill expires before the resume.
    crate::common::wait_until(std::time::Duration::from_secs(10), "the uploads to expire", || {
        env.sim.stats().live_uploads == 0
    })
    .await;
    env.sim.set_faults(kling_batch::sim::Faults {
        upload_ttl_seconds: 2,
        ..Default::default()
    });
    let out = env.run(&["--concurrency", "2", "--max-spend", "none"]).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let rows = env.results();
    assert_eq!(rows.len(), 8);
    assert!(rows.iter().all(|r| r["status"] == "completed"), "{rows:?}");
    let stats = env.sim.stats();
    assert_eq!(
        stats.counters.creates_with_unusable_upload, 0,
        "no create named an expired upload"
    );
    assert_eq!(stats.counters.upload_requests_with_authorization, 0);
    env.check_invariants(None);
}

#[test]
fn csv_cells_name_local_files_too() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cat.png"), png("cat")).unwrap();
    let manifest = dir.path().join("jobs.csv");
    std::fs::write(
        &manifest,
        "endpoint,model,mode,prompt,first_frame_image_url\nimage_to_video,kling-v2.6,pro,the cat yawns,cat.png\n",
    )
    .unwrap();
    let plan = plan_json(&manifest);
    assert_eq!(plan["jobs"].as_array().unwrap().len(), 1);
    assert!(plan["jobs"][0]["id"].as_str().unwrap().contains("-cat-"), "{plan:#}");
    std::fs::write(
        &manifest,
        "endpoint,model,mode,prompt,first_frame_image_url\nimage_to_video,kling-v2.6,pro,the dog yawns,dog.png\n",
    )
    .unwrap();
    let out = run(&["plan", manifest.to_str().unwrap()]);
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(out.stderr.contains("jobs.csv:2:"), "row and column: {}", out.stderr);
    assert!(out.stderr.contains("dog.png does not exist"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_edited_after_planning_is_reported_not_uploaded() {
    use kling_batch::client::credentials::{ApiKey, Credentials};
    use kling_batch::client::{Pacer, RunApi};
    use std::sync::Arc;
    let env = TestEnv::new(|c| c.separate_file_origin = true, SWEEP).await;
    std::fs::create_dir(env.dir.path().join("photos")).unwrap();
    std::fs::write(env.dir.path().join("photos/mug.png"), png("mug")).unwrap();
    std::fs::write(env.dir.path().join("hero.png"), png("hero")).unwrap();
    let loaded = kling_batch::manifest::read(&env.manifest).unwrap();
    let inputs = kling_batch::inputs::gather(&loaded.manifest, u64::MAX).unwrap();
    let mug = inputs
        .file("photos/mug.png")
        .expect("the pattern matched the mug")
        .clone();
    let hero = inputs.file("hero.png").unwrap().clone();
    // Edited between the plan and the upload.
    std::fs::write(env.dir.path().join("photos/mug.png"), png("mug, edited")).unwrap();
    let credentials = Credentials {
        api_key: ApiKey::new(env.sim.api_key()),
        base_url: env.sim.base_url().to_string(),
    };
    let api = RunApi::new(
        credentials,
        Arc::new(Pacer::new(100.0)),
        std::time::Duration::from_secs(5),
    )
    .unwrap();
    let cache = kling_batch::client::uploads::UploadCache::default();
    let plain = reqwest::Client::builder().no_proxy().build().unwrap();
    let request = format!("{{\"first_frame_image_url\":\"{}\"}}", mug.placeholder());
    let error = cache.body_for(&api, &plain, &inputs, &request).await.unwrap_err();
    assert!(
        error
            .message
            .contains("photos/mug.png changed since the run was planned"),
        "{error}"
    );
    assert!(!error.transient);
    assert_eq!(env.sim.stats().counters.uploads_prepared, 0, "nothing was sent for it");
    // An untouched file goes up, and its body names the upload.
    let request = format!("{{\"first_frame_image_url\":\"{}\"}}", hero.placeholder());
    let prepared = cache.body_for(&api, &plain, &inputs, &request).await.unwrap();
    assert!(prepared.body.contains("/uploaded/"), "{}", prepared.body);
    assert!(prepared.send_until.is_some());
    assert_eq!(env.sim.stats().counters.uploads_confirmed, 1);
}
