//! The promises under abuse: abrupt exits at each named crash point followed by a resume,
//! spreadsheet formulas in prompts, and inputs that must never panic the parsers.

use crate::common::{TWELVE_JOBS, TestEnv};
use kling_batch::sim::Faults;
use proptest::prelude::*;

/// Every named crash point in the runner (see `crash::point`).
const CRASH_POINTS: &[&str] = &[
    "journal.before_write",
    "submit.after_intent",
    "submit.after_post",
    "download.mid",
    "download.before_rename",
    "results.before_rename",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abrupt_exit_at_every_crash_point_resumes_without_loss_or_double_pay() {
    for point in CRASH_POINTS {
        for nth in [1, 4] {
            let env = TestEnv::new(
                |c| {
                    c.video_bytes = 200_000;
                    c.faults = Faults {
                        truncate_download_rate: 0.2,
                        task_failure_rate: 0.1,
                        not_found_reads: 1,
                        misaligned_range_rate: 0.2,
                        no_length_rate: 0.1,
                        bill_factor: 1.25,
                        ..Faults::default()
                    };
                },
                TWELVE_JOBS,
            )
            .await;
            // The service bills above its quotes here: lift the default cap (the estimate).
            let crashed = env
                .command(&["--concurrency", "4", "--max-spend", "none"])
                .env("KLING_BATCH_CRASH_AT", format!("{point}:{nth}"))
                .output()
                .await
                .unwrap();
            assert_eq!(
                crashed.status.code(),
                None,
                "{point}:{nth} should abort the process:\n{}",
                String::from_utf8_lossy(&crashed.stderr)
            );
            let mut resumed = env.run(&["--concurrency", "4", "--max-spend", "none"]).await;
            if resumed.code == Some(5) {
                // A download that met a fault on every try is left for the next run.
                resumed = env.run(&["--concurrency", "4", "--max-spend", "none"]).await;
            }
            assert!(
                matches!(resumed.code, Some(0 | 7)),
                "resume after {point}:{nth}: {:?}\n{}",
                resumed.code,
                resumed.stderr
            );
            env.check_invariants(None);
            assert_eq!(env.results().len(), 12);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn formulas_in_prompts_come_out_inert_in_results_csv() {
    let dangerous = [
        "=1+1 a lake",
        "+SUM(A1) a river",
        "-2 a sea",
        "@cmd a forest",
        "\tTAB a desert",
        "\rCR a glacier",
    ];
    let prompts: Vec<String> = dangerous.iter().map(|p| serde_json::to_string(p).unwrap()).collect();
    let manifest = format!("defaults: {{ model: kling-3.0 }}\nprompts: [{}]\n", prompts.join(", "));
    let env = TestEnv::new(|_| {}, &manifest).await;
    assert_eq!(env.run(&[]).await.code, Some(0));
    let rows = env.results();
    assert_eq!(rows.len(), dangerous.len());
    for row in rows {
        assert!(row["prompt"].starts_with('\''), "not neutralised: {:?}", row["prompt"]);
        assert!(
            dangerous.contains(&&row["prompt"][1..]),
            "the text itself is kept: {:?}",
            row["prompt"]
        );
    }
    env.check_invariants(None);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_journal_reader_never_panics_and_keeps_every_intact_record(
        good in 0usize..5,
        tail in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let record = kling_batch::journal::Record::TimedOut { job: "j".into(), task_id: "t".into(), at: "a".into() };
        let mut bytes: Vec<u8> = Vec::new();
        for _ in 0..good {
            bytes.extend(record.to_line().as_bytes());
            bytes.push(b'\n');
        }
        bytes.extend(&tail);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        std::fs::write(&path, &bytes).unwrap();
        match kling_batch::journal::read(&path) {
            // A tail without a newline is a torn line: cut, never the records before it.
            Ok((records, recovery)) => {
                prop_assert!(records.len() >= good, "an intact record before the damage was lost");
                prop_assert!(recovery.valid_len as usize >= good * (record.to_line().len() + 1));
                prop_assert!(recovery.valid_len as usize <= bytes.len());
            }
            // Garbage followed by more lines is corruption, reported with its line number.
            Err(e) => prop_assert!(e.to_string().contains("journal.jsonl:")),
        }
    }

    #[test]
    fn the_manifest_reader_never_panics(text in "(\\PC|\n|\t| ){0,400}") {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.yaml");
        std::fs::write(&path, &text).unwrap();
        if let Ok(manifest) = kling_batch::manifest::load(&path) {
            let _ = kling_batch::plan::expand(&manifest);
        }
    }

    #[test]
    fn manifests_of_real_keys_with_random_values_never_panic(
        key in prop::sample::select(vec!["model", "duration_seconds", "aspect_ratio", "prompt", "vars", "matrix", "repeat", "id", "endpoint", "multi_prompt", "limits"]),
        value in "(\\PC){0,40}",
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.yaml");
        let text = format!("defaults: {{ model: kling-3.0 }}\nprompts:\n  - prompt: a lake\n    {key}: {value}\nmatrix:\n  {key}: [{value}]\n");
        std::fs::write(&path, text).unwrap();
        if let Ok(manifest) = kling_batch::manifest::load(&path) {
            let _ = kling_batch::plan::expand(&manifest);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_answers_slow_responses_and_servers_ignoring_range_are_survived() {
    let env = TestEnv::new(
        |c| {
            c.seed = 21;
            c.video_bytes = 200_000;
            c.faults = Faults {
                weird_answer_rate: 0.3,
                ignore_range: true,
                truncate_download_rate: 0.3,
                slow_rate: 0.1,
                slow_ms: 1_500,
                ..Faults::default()
            };
        },
        TWELVE_JOBS,
    )
    .await;
    let out = env.run(&["--request-timeout", "400ms", "--concurrency", "6"]).await;
    assert!(matches!(out.code, Some(0 | 7)), "{:?}\n{}", out.code, out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    env.check_invariants(None);
    let stats = env.sim.stats();
    assert!(stats.counters.weird_answers > 0, "hostile answers were given");
    assert!(
        stats.counters.truncated_downloads > 0,
        "downloads were cut and restarted from zero"
    );
    assert_eq!(
        env.results().iter().filter(|r| r["status"] == "completed").count(),
        12,
        "none of it fails a job"
    );
}

/// A real full disk: `videos/` is a 120 KiB tmpfs (mounted in a private mount namespace of the
/// run's own, so it vanishes with the process), which two 50 KB videos and a third's start fill.
/// The run must stop cleanly (exit 1, the resume command); a resume on the real disk finishes
/// without paying twice. Needs root or unprivileged user namespaces (`unshare -rm`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_the_run_cleanly_and_a_resume_finishes() {
    let env = TestEnv::new(|_| {}, TWELVE_JOBS).await;
    let videos = env.out.join("videos");
    std::fs::create_dir_all(&videos).unwrap();
    let run = env.command(&["--concurrency", "1"]);
    let std_run = run.as_std();
    let mut cmd = tokio::process::Command::new("unshare");
    cmd.args([
        "-rm",
        "sh",
        "-c",
        "mount -t tmpfs -o size=120k tmpfs \"$0\" && exec \"$@\"",
    ])
    .arg(&videos)
    .arg(std_run.get_program())
    .args(std_run.get_args())
    .env_remove("RUNAPI_BASE_URL")
    .stdin(std::process::Stdio::null())
    .kill_on_drop(true);
    for (key, value) in std_run.get_envs() {
        if let Some(value) = value {
            cmd.env(key, value);
        }
    }
    let out = cmd.output().await.expect("unshare runs (util-linux)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("disk is full"), "{stderr}");
    assert!(stderr.contains("resume with:"), "{stderr}");
    let out = env.run(&[]).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    env.check_invariants(None);
    assert_eq!(
        env.sim.stats().counters.tasks_created,
        12,
        "the resume paid for nothing twice"
    );
}
