//! Object storage against a real S3-compatible server (issue 19, first part): the probe before
//! spending, whole objects, and multipart uploads streamed in 5 MiB parts, finished (size and
//! BLAKE3 checked) or abandoned with no part left behind.

use crate::common::TestEnv;
use crate::s3::{S3Server, SECRET_KEY};
use kling_batch::output::bucket::{Bucket, BucketError, BucketUrl, MIN_PART};
use kling_batch::sim::Faults;

fn bucket(server: &S3Server, url: &str, secret: &str) -> Bucket {
    Bucket::from_config(&BucketUrl::parse(url).unwrap(), &server.config(secret)).unwrap()
}

/// Bytes that differ at every offset, so a part in the wrong place shows.
fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()
}

#[tokio::test]
async fn the_probe_tells_a_wrong_secret_and_a_missing_bucket_apart_and_never_shows_the_secret() {
    let server = S3Server::start(&["sweeps"]);
    bucket(&server, "s3://sweeps/lake", SECRET_KEY).probe().await.unwrap();
    // (s3s-fs keeps its own metadata of deleted objects beside the buckets; the bucket is empty.)
    let objects: Vec<_> = server
        .files()
        .into_iter()
        .filter(|p| p.starts_with(server.root().join("sweeps")))
        .collect();
    assert!(objects.is_empty(), "the probe object is deleted: {objects:?}");

    let wrong = "not-the-secret-0123456789";
    let e = bucket(&server, "s3://sweeps/lake", wrong).probe().await.unwrap_err();
    assert!(matches!(e, BucketError::Credentials(_)), "{e:?}");
    assert!(
        !e.to_string().contains(wrong) && !e.to_string().contains(SECRET_KEY),
        "{e}"
    );

    let e = bucket(&server, "s3://nowhere/lake", SECRET_KEY)
        .probe()
        .await
        .unwrap_err();
    assert!(matches!(e, BucketError::NoBucket { .. }), "{e:?}");
    assert!(!e.to_string().contains(SECRET_KEY), "{e}");
}

#[tokio::test]
async fn a_multipart_upload_streams_in_parts_and_is_checked_when_finished() {
    let server = S3Server::start(&["sweeps"]);
    let b = bucket(&server, "s3://sweeps/lake", SECRET_KEY);
    let body = data(2 * MIN_PART + 123_457);
    let id = b.begin("videos/job-1.mp4").await.unwrap();
    let mut writer = b.writer("videos/job-1.mp4", id);
    for chunk in body.chunks(64 * 1024) {
        writer.write(chunk).await.unwrap();
    }
    let done = writer.finish().await.unwrap();
    assert_eq!(done.bytes, body.len() as u64);
    assert_eq!(done.checksum, format!("blake3:{}", blake3::hash(&body).to_hex()));
    let stored = std::fs::read(server.root().join("sweeps/lake/videos/job-1.mp4")).unwrap();
    assert!(stored == body, "the object is the bytes streamed, in order");
    assert_eq!(b.size("videos/job-1.mp4").await.unwrap(), Some(body.len() as u64));

    // A whole object at once, and an empty upload.
    b.put("results.csv", b"job_id\n".to_vec()).await.unwrap();
    assert_eq!(
        std::fs::read(server.root().join("sweeps/lake/results.csv")).unwrap(),
        b"job_id\n"
    );
    let id = b.begin("videos/empty.mp4").await.unwrap();
    assert_eq!(b.writer("videos/empty.mp4", id).finish().await.unwrap().bytes, 0);
}

#[tokio::test]
async fn an_upload_left_by_a_killed_run_is_aborted_by_its_recorded_id_and_leaves_nothing() {
    let server = S3Server::start(&["sweeps"]);
    let b = bucket(&server, "s3://sweeps/lake", SECRET_KEY);
    let before = server.files();
    // A run records the id, sends a part, and is killed: the writer is simply dropped.
    let id = b.begin("videos/job-2.mp4").await.unwrap();
    let mut writer = b.writer("videos/job-2.mp4", id.clone());
    writer.write(&data(MIN_PART + 10)).await.unwrap();
    drop(writer);
    assert!(server.files().len() > before.len(), "the server holds the part sent");
    // The resume aborts it by the recorded id: no part, and no object under the final name.
    b.abort("videos/job-2.mp4", &id).await.unwrap();
    assert_eq!(server.files(), before, "no part of the abandoned upload is left");
    assert_eq!(b.size("videos/job-2.mp4").await.unwrap(), None);
    // (Aborting it again is 404 NoSuchUpload at S3, taken as done; s3s-fs answers 403, so a resume
    // records each abort and does not repeat it.)
}

/// A run to `s3://sweeps/lake` with its journal in `env.out`, the server's settings in the
/// environment.
fn to_bucket(env: &TestEnv, server: &S3Server, secret: &str, extra: &[&str]) -> tokio::process::Command {
    let mut args = vec!["--state", env.out.to_str().unwrap()];
    args.extend_from_slice(extra);
    let mut cmd = env.command_to(std::ffi::OsStr::new("s3://sweeps/lake"), &args);
    for (k, v) in server.config(secret) {
        cmd.env(k, v);
    }
    cmd
}

async fn finish(cmd: &mut tokio::process::Command) -> (Option<i32>, String) {
    let out = cmd.output().await.unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// 8 jobs of 5 s on kling-3.0, each video 11 MiB: three parts apiece.
const EIGHT: &str = r#"
defaults: { model: kling-3.0, duration_seconds: 5 }
prompts: ["a lake at dawn", "a river in spring", "a sea in a storm", "a forest at night"]
matrix: { aspect_ratio: ["16:9", "9:16"] }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_to_s3_killed_twice_resumes_with_every_object_exact_and_no_part_left() {
    let server = S3Server::start(&["sweeps"]);
    let env = TestEnv::new(
        |c| {
            c.seed = 13;
            c.video_bytes = 11 * 1024 * 1024;
            c.faults = Faults {
                truncate_download_rate: 0.2,
                ..Faults::default()
            };
        },
        EIGHT,
    )
    .await;
    let mut logs = String::new();
    // Aborted (a crash point: like a power cut) with parts of a video uploaded and the upload not
    // completed; then killed twice more; then resumed to the end.
    let crashed = to_bucket(&env, &server, SECRET_KEY, &[])
        .env("KLING_BATCH_CRASH_AT", "upload.before_complete:2")
        .output()
        .await
        .unwrap();
    assert_eq!(
        crashed.status.code(),
        None,
        "{}",
        String::from_utf8_lossy(&crashed.stderr)
    );
    logs.push_str(&String::from_utf8_lossy(&crashed.stderr));
    // Then SIGKILLed twice, each time once it has begun an upload of its own.
    let journal = env.out.join("journal.jsonl");
    let begun = |text: &str| text.matches("\"t\":\"upload_begun\"").count();
    for _ in 0..2 {
        let mut child = to_bucket(&env, &server, SECRET_KEY, &[]).spawn().unwrap();
        let before = begun(&std::fs::read_to_string(&journal).unwrap());
        // (A run that finished first, with nothing left to upload, is not waited for.)
        crate::common::wait_until(
            std::time::Duration::from_secs(60),
            "an upload of its own to begin",
            || {
                begun(&std::fs::read_to_string(&journal).unwrap_or_default()) > before
                    || child.try_wait().unwrap().is_some()
            },
        )
        .await;
        let _ = child.start_kill();
        child.wait().await.unwrap();
    }
    let (mut code, mut err) = finish(&mut to_bucket(&env, &server, SECRET_KEY, &[])).await;
    logs.push_str(&err);
    for _ in 0..3 {
        if code != Some(5) {
            break;
        }
        (code, err) = finish(&mut to_bucket(&env, &server, SECRET_KEY, &[])).await;
        logs.push_str(&err);
    }
    assert_eq!(code, Some(0), "{err}");
    assert!(logs.contains("aborted") && logs.contains("unfinished upload"), "{logs}");

    // Every video object is the task's video, byte for byte; the documents are there.
    let lake = server.root().join("sweeps/lake");
    check_bucket(&env, &lake, 8);
    assert!(lake.join("report.html").exists() && lake.join("summary.json").exists());
    // No unfinished upload is left in the server's store (its `.upload-<id>.json` is what makes
    // an upload exist there; parts without one are left by s3s-fs itself when a kill interrupts a
    // completion mid-way, which S3 does atomically), none is open in the journal, and nothing was
    // billed twice.
    // An upload the kill caught between its creation and its journaled id stays, empty: no part of
    // it was sent (the id is journaled before the first part).
    let names: Vec<String> = server
        .files()
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    let unfinished_with_parts: Vec<&String> = names
        .iter()
        .filter_map(|n| n.strip_prefix(".upload-")?.strip_suffix(".json"))
        .flat_map(|id| {
            names
                .iter()
                .filter(move |n| n.starts_with(&format!(".upload_id-{id}.part-")))
        })
        .collect();
    assert!(unfinished_with_parts.is_empty(), "{unfinished_with_parts:?}\n{logs}");
    let (records, _) = kling_batch::journal::read(&journal).unwrap();
    let replayed = kling_batch::journal::replay(&records);
    assert!(
        replayed.jobs.values().all(|f| f.open_uploads().is_empty()),
        "an upload is still open in the journal"
    );
    // `status` and `report` on the run's folder look in the bucket.
    let tool = |args: &[&str]| {
        let mut cmd = crate::common::kling_batch();
        cmd.args(args);
        for (k, v) in server.config(SECRET_KEY) {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let status = tool(&["status", env.out.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("8 jobs: 8 completed"), "{text}");
    std::fs::remove_file(lake.join("report.html")).unwrap();
    let report = tool(&["report", env.out.to_str().unwrap()]);
    assert_eq!(
        report.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&report.stderr)
    );
    assert!(
        lake.join("report.html").exists(),
        "report rewrote the gallery in the bucket"
    );
    // The storage secret is in no log and no file.
    assert!(!logs.contains(SECRET_KEY), "the secret leaked into a log");
    for file in [journal, lake.join("results.csv"), lake.join("summary.json")] {
        assert!(
            !std::fs::read_to_string(&file).unwrap().contains(SECRET_KEY),
            "{}",
            file.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_or_a_missing_bucket_stops_the_run_before_any_create() {
    let server = S3Server::start(&["sweeps"]);
    let env = TestEnv::new(|_| {}, EIGHT).await;
    let wrong = "wrong-secret-4242424242";
    let (code, err) = finish(&mut to_bucket(&env, &server, wrong, &[])).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("refused the credentials") && err.contains("nothing was created"),
        "{err}"
    );
    assert!(!err.contains(wrong), "{err}");
    let mut cmd = env.command_to(
        std::ffi::OsStr::new("s3://nowhere/lake"),
        &["--state", env.out.to_str().unwrap()],
    );
    for (k, v) in server.config(SECRET_KEY) {
        cmd.env(k, v);
    }
    let (code, err) = finish(&mut cmd).await;
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("bucket `nowhere` does not exist"), "{err}");
    assert_eq!(env.sim.stats().counters.tasks_created, 0);
    // Without a place for the checkpoint the run is refused too.
    let (code, err) = finish(&mut env.command_to(std::ffi::OsStr::new("s3://sweeps/lake"), &[])).await;
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("needs a place for the run's checkpoint"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_on_one_database_write_one_bucket() {
    let server = S3Server::start(&["sweeps"]);
    let pg = crate::pg::Postgres::start();
    let url = pg.database("bucketed");
    let env = TestEnv::new(
        |c| {
            c.video_bytes = 6 * 1024 * 1024;
            c.time_scale = 100.0;
        },
        EIGHT,
    )
    .await;
    let worker = || {
        let mut cmd = env.command_to(
            std::ffi::OsStr::new("s3://sweeps/lake"),
            &["--state", &url, "--lease", "2s", "--concurrency", "2"],
        );
        for (k, v) in server.config(SECRET_KEY) {
            cmd.env(k, v);
        }
        cmd.output()
    };
    let (a, b) = tokio::join!(worker(), worker());
    for out in [a.unwrap(), b.unwrap()] {
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(!String::from_utf8_lossy(&out.stderr).contains(SECRET_KEY));
    }
    check_bucket(&env, &server.root().join("sweeps/lake"), 8);
    assert!(!server.files().iter().any(|p| p.to_string_lossy().contains("upload_id")));
    // Both workers took part, and no local folder was made for the s3:// address.
    let workers = pg.sql(
        "bucketed",
        "select count(distinct worker) from kb_records where record like '%\"t\":\"downloaded\"%'",
    );
    assert_eq!(workers, "2", "both workers stored videos");
    assert!(!std::path::Path::new("s3:").exists());
}

/// The run's objects in `lake` (the bucket's folder on the server's disk): every job completed,
/// each video the task's video byte for byte with its recorded BLAKE3, nothing billed twice, and
/// the spend in the bucket's summary.json and results.csv what the simulator billed.
fn check_bucket(env: &TestEnv, lake: &std::path::Path, jobs: usize) {
    let rows = crate::common::read_rows(&lake.join("results.csv"));
    assert_eq!(rows.len(), jobs);
    for row in &rows {
        assert_eq!(row["status"], "completed", "{row:?}");
        let object = std::fs::read(lake.join(&row["video_path"])).unwrap();
        assert!(
            object == env.sim.video_of(&row["task_id"]),
            "{} is the served video",
            row["job_id"]
        );
        assert_eq!(row["checksum"], format!("blake3:{}", blake3::hash(&object).to_hex()));
    }
    env.check_bills(None);
    env.check_spend_reported_in(lake, true);
    assert_eq!(env.sim.stats().counters.billed_per_client_request_id.len(), jobs);
}

/// Issue 26, item 2: a plain-http endpoint without `AWS_ALLOW_HTTP=true` is refused before
/// anything is written or created, saying what is wrong and how to allow it (exit 4), never with
/// the store client's bare "builder error" or the secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_http_endpoint_without_allow_http_says_how_to_allow_it() {
    let server = S3Server::start(&["sweeps"]);
    let env = TestEnv::new(|_| {}, EIGHT).await;
    let mut cmd = to_bucket(&env, &server, SECRET_KEY, &[]);
    cmd.env_remove("AWS_ALLOW_HTTP");
    let (code, err) = finish(&mut cmd).await;
    assert_eq!(code, Some(4), "{err}");
    assert!(
        err.contains("is plain http") && err.contains("AWS_ALLOW_HTTP=true") && err.contains("https://"),
        "{err}"
    );
    assert!(!err.contains("builder error") && !err.contains(SECRET_KEY), "{err}");
    assert_eq!(env.sim.stats().counters.tasks_created, 0);
    assert!(server.files().is_empty(), "nothing was put: {:?}", server.files());
    // With it allowed, the same command runs.
    let (code, err) = finish(&mut to_bucket(&env, &server, SECRET_KEY, &[])).await;
    assert_eq!(code, Some(0), "{err}");
    check_bucket(&env, &server.root().join("sweeps/lake"), 8);
}
