//! Local files checked where they are used (issue 24): the bytes uploaded are the bytes the plan
//! checked, a create goes out only while its uploads live (checked after the wait for the rate),
//! and a create whose answer was lost is recovered after its uploads expired by re-sending the
//! exact first request under its key — one task, no 409s.

use crate::common::{TestEnv, wait_until};
use kling_batch::sim::Faults;
use std::io::{Seek, SeekFrom, Write};
use std::time::Duration;

/// One job on one local file.
const ONE: &str = r#"defaults: { endpoint: image_to_video, model: kling-v2.6, mode: pro, duration_seconds: 5 }
prompts:
  - id: hero
    prompt: "the hero shot, pulled back"
    first_frame_image_url: hero.png
"#;

fn picture(size: usize, tag: u8) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend((0..size).map(|i| (i as u8).wrapping_mul(31).wrapping_add(tag)));
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_replaced_while_its_upload_is_sent_is_never_confirmed_or_used() {
    use kling_batch::client::credentials::{ApiKey, Credentials};
    use kling_batch::client::{Pacer, RunApi};
    use std::sync::Arc;
    // An upload host that takes what arrives without checking Content-MD5, slowly.
    let env = TestEnv::new(
        |c| {
            c.faults.upload_unchecked = true;
            c.faults.upload_slow_ms = 30;
        },
        ONE,
    )
    .await;
    let path = env.dir.path().join("hero.png");
    let size = 16 << 20;
    std::fs::write(&path, picture(size, 1)).unwrap();
    let loaded = kling_batch::manifest::read(&env.manifest).unwrap();
    let inputs = kling_batch::inputs::gather(&loaded.manifest, u64::MAX).unwrap();
    let hero = inputs.file("hero.png").unwrap().clone();
    let api = RunApi::new(
        Credentials {
            api_key: ApiKey::new(env.sim.api_key()),
            base_url: env.sim.base_url().to_string(),
        },
        Arc::new(Pacer::new(100.0)),
        Duration::from_secs(60),
    )
    .unwrap();
    let request = format!("{{\"first_frame_image_url\":\"{}\"}}", hero.placeholder());
    let upload = tokio::spawn(async move {
        let cache = kling_batch::client::uploads::UploadCache::default();
        let plain = reqwest::Client::builder().no_proxy().build().unwrap();
        cache.body_for(&api, &plain, &inputs, &request).await
    });
    // The file is checked, then its PUT begins: now its second half is rewritten in place (the
    // size stays, the bytes change), long before the slow upload has read that far.
    wait_until(Duration::from_secs(30), "the PUT to begin", || {
        env.sim.stats().counters.upload_requests > 0
    })
    .await;
    let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.seek(SeekFrom::Start((size / 2) as u64)).unwrap();
    file.write_all(&vec![0u8; size / 2]).unwrap();
    file.sync_all().unwrap();
    let error = upload.await.unwrap().unwrap_err();
    assert!(
        error.message.contains("hero.png changed while it was being uploaded"),
        "{error}"
    );
    assert!(!error.transient, "not retried: the plan's file is gone");
    let stats = env.sim.stats();
    assert_eq!(stats.counters.uploads_delivered, 1, "the changed bytes did arrive");
    assert_eq!(stats.counters.uploads_confirmed, 0, "…and were never confirmed");
    assert_eq!(stats.counters.tasks_created, 0, "nothing was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_held_back_by_the_rate_past_its_uploads_life_is_never_sent() {
    // Uploads live one second; a request may leave once a second: a create always waits past its
    // upload's life. Checked when it would leave, it is held back and the file uploaded again.
    let env = TestEnv::new(|c| c.faults.upload_ttl_seconds = 1, ONE).await;
    std::fs::write(env.dir.path().join("hero.png"), picture(2_000, 2)).unwrap();
    let out = env.run(&["--rate", "1", "--max-spend", "none"]).await;
    assert_eq!(out.code, Some(7), "{}", out.stderr);
    let rows = env.results();
    assert_eq!(rows[0]["status"], "failed");
    assert!(
        rows[0]["error"].contains("uploads kept expiring before its create could be sent"),
        "{rows:?}"
    );
    let stats = env.sim.stats();
    assert_eq!(
        stats.counters.creates_with_unusable_upload, 0,
        "no create named an expired upload"
    );
    assert_eq!(stats.counters.tasks_created, 0);
    assert!(stats.counters.uploads_confirmed >= 2, "uploaded again before giving up");
    env.check_money(None);
    // A pace the uploads can live through: the same job completes (its new attempt).
    let out = env
        .run(&["--rate", "50", "--retry-failed", "--max-spend", "none"])
        .await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(env.sim.stats().counters.creates_with_unusable_upload, 0);
    env.check_invariants(None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_create_answer_resumed_after_its_uploads_expired_finds_its_task_by_replay() {
    // Every create's answer is lost (the task is made); the run is killed after the first.
    let env = TestEnv::new(
        |c| {
            c.faults.upload_ttl_seconds = 2;
            c.faults.drop_after_create_rate = 1.0;
        },
        ONE,
    )
    .await;
    std::fs::write(env.dir.path().join("hero.png"), picture(2_000, 3)).unwrap();
    let mut child = env.command(&["--max-spend", "none"]).spawn().unwrap();
    wait_until(Duration::from_secs(30), "the first create", || {
        env.sim.stats().counters.tasks_created > 0
    })
    .await;
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    env.sim.set_faults(Faults {
        upload_ttl_seconds: 2,
        ..Faults::default()
    });
    // The scenario: the resume comes after the upload the intent's body names has expired.
    wait_until(Duration::from_secs(10), "the upload to expire", || {
        env.sim.stats().live_uploads == 0
    })
    .await;
    let out = env.run(&["--max-spend", "none"]).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let stats = env.sim.stats();
    assert_eq!(stats.counters.tasks_created, 1, "one create: the resend was a replay");
    assert!(stats.counters.replays >= 1, "the task came back by replay");
    assert_eq!(stats.counters.conflicts, 0, "never another body under the key");
    assert_eq!(stats.counters.creates_with_unusable_upload, 0);
    assert_eq!(stats.counters.uploads_confirmed, 1, "nothing uploaded again");
    env.check_invariants(None);
}

/// A client whose clock runs 2 h ahead of the service's (the service's dates are 2 h behind it):
/// the upload's life is counted from the confirm on the client's own clock, so it uploads once,
/// sends its create and completes (issue 36: it once judged every upload expired on arrival).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_clock_two_hours_ahead_uploads_once_and_completes() {
    let env = TestEnv::new(|c| c.faults.clock_offset_seconds = -7200, ONE).await;
    std::fs::write(env.dir.path().join("hero.png"), picture(2_000, 3)).unwrap();
    let out = env.run(&["--max-spend", "none"]).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let stats = env.sim.stats();
    assert_eq!(stats.counters.uploads_confirmed, 1, "uploaded once");
    assert_eq!(stats.counters.creates_with_unusable_upload, 0);
    assert_eq!(env.results()[0]["status"], "completed");
    env.check_invariants(None);
}
