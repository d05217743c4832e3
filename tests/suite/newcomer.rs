//! What a new user still tripped over (issue 26), each through the real binary with the exact exit
//! code and the words the user needs. (Item 2 is in `bucket.rs`, item 4 and 5 in `run.rs`, items 6
//! and 9 in the browser test.)

use crate::common::{TWELVE_JOBS, TestEnv, run};
use crate::inputs::png;
use crate::pg::Postgres;

/// Item 1: a missing file in one entry does not stop another entry's pattern from expanding; the
/// missing file is reported at its own place, and the pattern nowhere.
#[test]
fn a_missing_file_is_reported_at_its_place_and_a_pattern_elsewhere_still_expands() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("photos")).unwrap();
    for name in ["mug", "lamp", "chair"] {
        std::fs::write(dir.path().join(format!("photos/{name}.png")), png(name)).unwrap();
    }
    let manifest = dir.path().join("local4.yaml");
    let text = r#"defaults: { endpoint: image_to_video, model: kling-v2.6, mode: pro }
prompts:
  - id: product
    prompt: "the product turns slowly on a table"
    first_frame_image_url: photos/*.png
  - id: hero
    prompt: "the hero shot, pulled back"
    first_frame_image_url: missing.png
matrix: { duration_seconds: [5, 10] }
"#;
    std::fs::write(&manifest, text).unwrap();
    let out = run(&["plan", manifest.to_str().unwrap()]);
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("local4.yaml:8:28: first_frame_image_url: missing.png does not exist"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("1 problem in the manifest"), "{}", out.stderr);
    assert!(
        !out.stderr.contains("local4.yaml:5:") && !out.stderr.contains("must be an http(s) URL"),
        "the pattern's entry is not reported: {}",
        out.stderr
    );
    // With the missing file there, the whole sweep plans: 3 photos and the hero, × 2 durations.
    std::fs::write(dir.path().join("missing.png"), png("hero")).unwrap();
    let out = run(&["plan", manifest.to_str().unwrap(), "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let plan: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(plan["jobs"].as_array().unwrap().len(), 8);
}

/// Item 3: `status` (and `run`) on a shared sweep's folder without `--state` say where its state
/// lives — the database's host and name, never its password — and how to point at it (exit 64).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_sweeps_folder_says_where_its_state_lives() {
    let pg = Postgres::start();
    let plain = pg.database("newcomer");
    // (The throwaway cluster trusts loopback: the password is carried, never checked.)
    let url = plain.replace("postgres://kb@", "postgres://kb:pw-never-shown-7731@");
    let env = TestEnv::new(|_| {}, TWELVE_JOBS).await;
    let worker = env.run(&["--state", &url]).await;
    assert_eq!(worker.code, Some(0), "{}", worker.stderr);
    assert!(!worker.stderr.contains("pw-never-shown-7731"), "{}", worker.stderr);
    env.check_invariants(None);
    let marker = std::fs::read_to_string(env.out.join("sweep.json")).unwrap();
    assert!(!marker.contains("pw-never-shown-7731"), "{marker}");

    let status = crate::common::kling_batch()
        .args(["status", env.out.to_str().unwrap()])
        .env_remove("KLING_BATCH_STATE")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&status.stderr);
    assert_eq!(status.status.code(), Some(64), "{err}");
    assert!(
        err.contains("is the output folder of shared sweep")
            && err.contains(&plain)
            && err.contains("--state")
            && err.contains("KLING_BATCH_STATE"),
        "{err}"
    );
    assert!(
        !err.contains("pw-never-shown-7731") && !err.contains("no journal"),
        "{err}"
    );
    // A run of its own there is refused the same way, before anything is created.
    let created = env.sim.stats().counters.tasks_created;
    let alone = env.run(&[]).await;
    assert_eq!(alone.code, Some(64), "{}", alone.stderr);
    assert!(
        alone.stderr.contains("is the output folder of shared sweep"),
        "{}",
        alone.stderr
    );
    assert_eq!(env.sim.stats().counters.tasks_created, created);
    // With the address, status reads the sweep.
    let status = crate::common::kling_batch()
        .args(["status", env.out.to_str().unwrap(), "--state", &plain])
        .output()
        .unwrap();
    assert_eq!(
        status.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
}

/// Item 7: what starts (the simulator) is announced only once every check has passed: a run
/// refused at a check says nothing of a simulator.
#[test]
fn a_refused_simulated_run_does_not_announce_the_simulator() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("sweep.yaml");
    std::fs::write(&manifest, TWELVE_JOBS).unwrap();
    let out = dir.path().join("mine");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("notes.txt"), "my own notes").unwrap();
    let (manifest, out_arg) = (manifest.to_str().unwrap(), out.to_str().unwrap());
    let refused = run(&["run", manifest, "--out", out_arg, "--simulate"]);
    assert_eq!(refused.code, 4, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("is not a kling-batch run folder"),
        "{}",
        refused.stderr
    );
    assert!(!refused.stderr.contains("simulating RunAPI"), "{}", refused.stderr);
    // A cap that cannot run one job is refused the same way.
    let fresh = dir.path().join("fresh");
    let capped = run(&[
        "run",
        manifest,
        "--out",
        fresh.to_str().unwrap(),
        "--simulate",
        "--max-spend",
        "0.10",
    ]);
    assert_eq!(capped.code, 4, "{}", capped.stderr);
    assert!(!capped.stderr.contains("simulating RunAPI"), "{}", capped.stderr);
    // And a run that goes ahead says it, before its first job.
    let ran = run(&[
        "run",
        manifest,
        "--out",
        fresh.to_str().unwrap(),
        "--simulate",
        "--time-scale",
        "1000",
    ]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(
        ran.stderr.contains("simulating RunAPI at http://127.0.0.1:"),
        "{}",
        ran.stderr
    );
    // The money: the in-process simulator says what it billed as it stops — every job once, and
    // exactly what the run reports it spent.
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fresh.join("summary.json")).expect("summary.json")).unwrap();
    let spent = summary["spent_usd"].as_f64().expect("spent_usd");
    let completed = crate::common::read_rows(&fresh.join("results.csv"))
        .iter()
        .filter(|r| r["status"] == "completed")
        .count();
    assert_eq!(completed, 12, "{}", ran.stderr);
    let billed = format!("the simulator billed ${spent:.2} for {completed} completed tasks; no job twice");
    assert!(ran.stderr.contains(&billed), "expected «{billed}» in:\n{}", ran.stderr);
    assert!(spent > 0.0);
}
