//! A hostile service: the ways a real RunAPI (and the network and file hosts in front of it) can
//! misbehave that a friendly simulator never shows — error answers to a resend, reads that are
//! not yet consistent, quotes below the bill, the key echoed back, misaligned ranges, bodies of
//! unknown length, trickling file hosts, planted symlinks. Each test names the rule it guards
//! (issue 12; RELIABILITY.md's "hostile service" table).

use crate::common::{TWELVE_JOBS, TestEnv};
use kling_batch::sim::Faults;
use serde_json::Value;

/// The service behaves again: a plain rerun finishes every job, and no job was created twice.
async fn the_fault_gone_a_resume_finishes(env: &TestEnv, jobs: u64, cap: Option<f64>) {
    env.sim.set_faults(Faults::default());
    let again = env.run(&[]).await;
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    env.check_invariants(cap);
    assert_eq!(env.sim.stats().counters.tasks_created, jobs);
}

fn summary(env: &TestEnv) -> Value {
    serde_json::from_slice(&std::fs::read(env.out.join("summary.json")).unwrap()).unwrap()
}

/// Rule: a key whose outcome is unknown stays unresolved, whatever an error answer to a resend
/// says; only a task id or a replay resolves it. Every create's answer is lost, and the resend is
/// answered once with 401, 402, 409 or 422; a later run (the fault gone) must replay the same key
/// rather than pay for a second task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_answer_to_a_resend_never_leads_to_a_second_bill() {
    for status in [401u16, 402, 409, 422] {
        let env = TestEnv::faulty(
            31,
            Faults {
                drop_after_create_rate: 1.0,
                resend_error_status: Some(status),
                ..Faults::default()
            },
            TWELVE_JOBS,
        )
        .await;
        let first = env.run(&["--concurrency", "4"]).await;
        assert!(!first.stderr.contains("panicked"), "{}", first.stderr);
        let stats = env.sim.stats();
        assert!(stats.counters.resend_errors > 0, "HTTP {status}: the fault happened");
        env.sim.set_faults(Faults::default());
        let second = env.run(&["--concurrency", "4"]).await;
        assert_eq!(
            second.code,
            Some(0),
            "HTTP {status}:\n{}\n{}",
            first.stderr,
            second.stderr
        );
        env.check_invariants(None);
        let stats = env.sim.stats();
        assert_eq!(stats.counters.tasks_created, 12, "HTTP {status}: one task per job");
        for (job, creates) in &stats.counters.creates_per_client_request_id {
            assert_eq!(*creates, 1, "HTTP {status}: {job} was created {creates} times");
        }
    }
}

/// Rule: a task id we hold is never abandoned. Status reads that answer 404 for a while after the
/// create, and `completed` answers without a URL for a while, are transient.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_that_are_not_yet_consistent_never_give_up_a_paid_video() {
    let env = TestEnv::faulty(
        32,
        Faults {
            not_found_reads: 6,
            completed_without_url_reads: 6,
            ..Faults::default()
        },
        TWELVE_JOBS,
    )
    .await;
    let out = env.run(&["--concurrency", "6"]).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    env.check_invariants(None);
    assert!(env.results().iter().all(|r| r["status"] == "completed"));
    let stats = env.sim.stats();
    assert!(stats.counters.not_found_reads >= 12 * 6 && stats.counters.reads_without_url >= 12 * 6);
}

/// Past the task deadline, a task that still reads 404 is left resumable with its reservation
/// kept — never an unbilled failure — and a later run finds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_stays_unreadable_is_left_for_a_rerun_with_its_money_held() {
    let env = TestEnv::new(
        |c| {
            c.seed = 33;
            c.faults.not_found_reads = 1_000_000;
        },
        TWELVE_JOBS,
    )
    .await;
    let out = env
        .run(&["--concurrency", "12", "--task-deadline", "1s", "--max-spend", "20"])
        .await;
    assert_eq!(out.code, Some(5), "{}", out.stderr);
    let s = summary(&env);
    assert!(s["failures"].as_array().unwrap().is_empty(), "nothing failed: {s}");
    assert!(
        (s["reserved_usd"].as_f64().unwrap() - 8.40).abs() < 1e-9,
        "every job still holds its reservation: {s}"
    );
    the_fault_gone_a_resume_finishes(&env, 12, Some(20.0)).await;
}

/// Rule: a reservation is the highest of the quote, the built-in price and the most the service
/// has settled for that shape; a settlement above its reservation counts at once. A service that
/// quotes about a cent and bills three times the price must not pass the cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quote_below_the_bill_does_not_pass_the_cap() {
    for quote_factor in [0.0, 0.01] {
        let env = TestEnv::new(
            |c| {
                c.faults.quote_factor = quote_factor;
                c.faults.bill_factor = 3.0;
            },
            TWELVE_JOBS,
        )
        .await;
        let out = env.run(&["--max-spend", "4.20", "--concurrency", "1"]).await;
        assert_eq!(out.code, Some(8), "{}", out.stderr);
        let billed = env.sim.stats().billed_usd;
        assert!(
            billed <= 4.20 + 1e-9,
            "quote ×{quote_factor}: billed ${billed} past a $4.20 cap"
        );
        assert!(billed > 0.0);
        assert!(
            out.stderr.contains("billed above"),
            "the summary says so:\n{}",
            out.stderr
        );
        env.check_money(Some(4.20));
    }
}

/// Rule: one classification of journaled state serves run, status, summary and results. Paid
/// videos that could not be downloaded leave the run unfinished, and `status` says a resume
/// downloads them; the resume does exactly that, with no new create.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_the_resume_agree_on_paid_videos_not_yet_downloaded() {
    let env = TestEnv::new(|_| {}, TWELVE_JOBS).await;
    let out = env.run(&["--max-video-bytes", "1000"]).await;
    assert_eq!(
        out.code,
        Some(5),
        "paid videos left to download, not failed: {}",
        out.stderr
    );
    env.check_money(None);
    let status = crate::common::run(&["status", env.out.to_str().unwrap(), "--json"]);
    assert_eq!(status.code, 0, "{}", status.stderr);
    let status: Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(status["finished"], false, "{status}");
    assert_eq!(status["next"]["download"], 12, "{status}");
    assert_eq!(status["next"]["submit"], 0, "{status}");
    let requests = env.sim.stats().counters.file_requests;
    let again = env.run(&[]).await;
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    env.check_invariants(None);
    let stats = env.sim.stats();
    assert_eq!(stats.counters.tasks_created, 12, "no new create");
    assert_eq!(
        stats.counters.file_requests,
        requests + 12,
        "each video fetched once more"
    );
}

/// Rule: every text that comes from the service is scrubbed of the key before it is stored or
/// shown. This service quotes the Authorization header in its error messages and failed tasks'
/// errors, and names the key it refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_the_service_echoes_back_is_stored_and_shown_nowhere() {
    let canary = "sk-echo-canary-5d1e9b";
    let env = TestEnv::new(
        |c| {
            c.seed = 34;
            c.api_key = canary.into();
            c.faults = Faults {
                echo_key: true,
                task_failure_rate: 0.4,
                server_error_rate: 0.1,
                // Most creates lose their answer, so a resend (answered with the echo) happens
                // whatever order the fault draws fall in.
                drop_after_create_rate: 0.7,
                resend_error_status: Some(422),
                ..Faults::default()
            };
        },
        TWELVE_JOBS,
    )
    .await;
    std::fs::create_dir_all(&env.out).unwrap();
    let log = env.out.join("run.log");
    let out = env
        .command(&["-vv", "--log-file", log.to_str().unwrap(), "--max-attempts", "1"])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let wrong = "sk-wrong-canary-88c2af";
    let stats = env.sim.stats();
    assert!(
        stats.counters.tasks_failed > 0 && stats.counters.resend_errors > 0,
        "the echoes happened: {} failed tasks, {} resends answered with an error, {} dropped",
        stats.counters.tasks_failed,
        stats.counters.resend_errors,
        stats.counters.dropped_connections
    );
    // A wrong key, echoed back by the 401 of the key check.
    env.sim.set_faults(Faults {
        echo_key: true,
        ..Faults::default()
    });
    let elsewhere = env.dir.path().join("out-wrong-key");
    let refused = env
        .command(&["--out", elsewhere.to_str().unwrap()])
        .env("RUNAPI_API_KEY", wrong)
        .output()
        .await
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let refused_stderr = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert!(refused_stderr.contains("Invalid API key: ***"), "{refused_stderr}");
    for key in [canary, wrong] {
        assert!(
            !stderr.contains(key) && !refused_stderr.contains(key),
            "{key} in stderr"
        );
        assert!(!elsewhere.exists(), "a refused key writes nothing");
        let mut files = vec![env.out.clone()];
        while let Some(path) = files.pop() {
            if path.is_dir() {
                files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes.windows(key.len()).any(|w| w == key.as_bytes()),
                "{key} is in {}",
                path.display()
            );
        }
    }
    assert!(
        std::fs::read_to_string(env.out.join("results.csv"))
            .unwrap()
            .contains("***"),
        "the echoed errors are kept, with the key masked"
    );
    env.check_money(None);
}

/// Rule: URLs are parsed with a real URL parser; userinfo in the base URL is refused; loopback
/// means the parsed host is a loopback address or `localhost`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_base_url_that_only_looks_local_is_refused() {
    let env = TestEnv::new(|_| {}, TWELVE_JOBS).await;
    for base in [
        "http://[::1]@example.com:80",
        "http://localhost:1@example.com/",
        "http://127.0.0.1.example.com/",
    ] {
        let out = env.command(&["--api-base", base]).output().await.unwrap();
        assert_eq!(out.status.code(), Some(4), "{base}");
        assert!(!env.out.exists(), "{base}: nothing written");
    }
    assert_eq!(env.sim.stats().requests_total(), 0);
}

/// Two jobs: enough to see a fault on each download without a long wait.
const TWO_JOBS: &str = r#"
defaults: { model: kling-3.0, duration_seconds: 5 }
prompts: ["a lake at dawn", "a river in spring"]
"#;

/// Rule: a 206 is used only when `Content-Range` starts exactly at the offset asked for (and its
/// total matches); a file is accepted only when its full length is known and matched. Cut
/// transfers are continued from servers whose 206s start early, and some answers are 200s
/// without a length that end after half the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misaligned_ranges_and_bodies_of_unknown_length_are_never_accepted() {
    for (misaligned, no_length) in [(1.0, 0.0), (0.0, 0.5), (0.5, 0.3)] {
        let env = TestEnv::new(
            |c| {
                c.seed = 35;
                c.video_bytes = 120_000;
                c.faults = Faults {
                    truncate_download_rate: 0.5,
                    misaligned_range_rate: misaligned,
                    no_length_rate: no_length,
                    ..Faults::default()
                };
            },
            TWELVE_JOBS,
        )
        .await;
        // A download whose every try met a fault is left for a rerun (exit 5), never accepted.
        let mut out = env.run(&["--concurrency", "6"]).await;
        for _ in 0..3 {
            if out.code != Some(5) {
                break;
            }
            out = env.run(&["--concurrency", "6"]).await;
        }
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        // Every file is compared with the task's video here, not with our own hash of it.
        env.check_invariants(None);
        let stats = env.sim.stats().counters;
        assert!(
            stats.misaligned_ranges > 0 || stats.downloads_without_length > 0,
            "the faults happened"
        );
    }
}

/// Rule: a stalled transfer (under a minimum rate for a while) is cut and continued or retried;
/// downloads are bounded, and the run ends by itself, resumable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_file_host_is_cut_off_and_the_run_ends_resumable() {
    let env = TestEnv::faulty(
        36,
        Faults {
            trickle_rate: 1.0,
            trickle_bytes_per_second: 200,
            ..Faults::default()
        },
        TWO_JOBS,
    )
    .await;
    let out = env
        .run(&["--stall-time", "300ms", "--min-download-speed", "2000"])
        .await;
    assert_eq!(out.code, Some(5), "{}", out.stderr);
    assert!(out.stderr.contains("resume with:"), "{}", out.stderr);
    assert!(
        env.sim.stats().counters.trickled_downloads > 2,
        "stalled transfers were cut and retried"
    );
    // The run's own summary and `status` agree on what is left: the paid videos.
    let status = crate::common::run(&["status", env.out.to_str().unwrap(), "--json"]);
    let status: Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(summary(&env)["next"], status["next"], "summary.json and status agree");
    assert_eq!(status["next"]["download"], 2, "{status}");
    env.check_money(None);
    the_fault_gone_a_resume_finishes(&env, 2, None).await;
}

/// `--max-runtime` and `--grace` cover downloads: a transfer slow enough not to count as
/// stalled still cannot keep the run going past them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_runtime_and_grace_end_a_run_stuck_in_slow_downloads() {
    let env = TestEnv::faulty(
        37,
        Faults {
            trickle_rate: 1.0,
            trickle_bytes_per_second: 2_000,
            ..Faults::default()
        },
        TWO_JOBS,
    )
    .await;
    // 50,000 bytes at 2,000 a second would take 25 s; the run must end after about 2.
    let run = env.run(&["--max-runtime", "1s", "--grace", "1s", "--min-download-speed", "100"]);
    let out = tokio::time::timeout(std::time::Duration::from_secs(20), run)
        .await
        .expect("the run ended by itself");
    assert_eq!(out.code, Some(5), "{}", out.stderr);
    env.check_money(None);
    the_fault_gone_a_resume_finishes(&env, 2, None).await;
}

/// Rule: entries inside the output folder are never followed as symlinks. A `videos/` replaced
/// by a symlink is refused, naming it; a planted `.part` symlink is removed, never written
/// through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symlinks_planted_in_the_output_folder_are_never_followed() {
    let env = TestEnv::new(|_| {}, TWO_JOBS).await;
    let elsewhere = env.dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::create_dir_all(&env.out).unwrap();
    std::os::unix::fs::symlink(&elsewhere, env.out.join("videos")).unwrap();
    let out = env.run(&[]).await;
    assert_eq!(out.code, Some(4), "{}", out.stderr);
    assert!(
        out.stderr.contains("videos") && out.stderr.contains("symlink"),
        "{}",
        out.stderr
    );
    assert_eq!(
        std::fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "nothing was written through it"
    );
    assert_eq!(env.sim.stats().counters.tasks_created, 0, "nothing was sent");
    std::fs::remove_file(env.out.join("videos")).unwrap();

    // A planted partial download pointing at a file of the user's.
    let victim = env.dir.path().join("precious.txt");
    std::fs::write(&victim, b"the user's own file").unwrap();
    let manifest = kling_batch::manifest::load(&env.manifest).unwrap();
    let plan = kling_batch::plan::expand(&manifest).unwrap();
    std::fs::create_dir_all(env.out.join("videos")).unwrap();
    for job in &plan.jobs {
        std::os::unix::fs::symlink(&victim, env.out.join("videos").join(format!("{}.mp4.part", job.id))).unwrap();
    }
    let out = env.run(&[]).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(std::fs::read(&victim).unwrap(), b"the user's own file");
    env.check_invariants(None);
}

/// Rule: a resume keeps every recorded limit (cap, rate, concurrency, base URL); a flag given
/// again replaces it and the run says so; every printed resume command reproduces them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_keeps_the_recorded_cap_and_target() {
    let env = TestEnv::new(|_| {}, TWELVE_JOBS).await;
    let first = env.run(&["--max-spend", "4.20", "--concurrency", "3"]).await;
    assert_eq!(first.code, Some(8), "{}", first.stderr);
    let status = crate::common::run(&["status", env.out.to_str().unwrap()]);
    let resume = status
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("resume with: "))
        .unwrap_or_else(|| panic!("status prints a resume command:\n{}", status.stdout))
        .to_string();
    assert!(resume.contains("--max-spend 4.20"), "{resume}");
    assert!(
        resume.contains(&format!("--api-base {}", env.sim.base_url())),
        "{resume}"
    );
    // Follow the tool's advice as a user would: the printed command, word for word (the key
    // comes from the environment, as before).
    let words: Vec<&str> = resume.split_whitespace().skip(1).collect();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_kling-batch"))
        .args(&words)
        .env("RUNAPI_API_KEY", env.sim.api_key())
        .env("RUNAPI_CONFIG_DIR", env.dir.path().join("no-config"))
        .env_remove("RUNAPI_BASE_URL")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(8), "{}", String::from_utf8_lossy(&out.stderr));
    // And with no flags at all: still capped, still aimed at the same service.
    let bare = tokio::process::Command::new(env!("CARGO_BIN_EXE_kling-batch"))
        .args([
            "run",
            env.manifest.to_str().unwrap(),
            "--out",
            env.out.to_str().unwrap(),
        ])
        .env("RUNAPI_API_KEY", env.sim.api_key())
        .env("RUNAPI_CONFIG_DIR", env.dir.path().join("no-config"))
        .env_remove("RUNAPI_BASE_URL")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    assert_eq!(bare.status.code(), Some(8), "{}", String::from_utf8_lossy(&bare.stderr));
    env.check_money(Some(4.20));
    // A higher cap given again replaces the recorded one, and the run says so.
    let raised = env.run(&["--max-spend", "100"]).await;
    assert_eq!(raised.code, Some(0), "{}", raised.stderr);
    assert!(raised.stderr.contains("replaces"), "{}", raised.stderr);
    env.check_invariants(Some(8.40));
}

/// Rule: nothing the tool advises can lead to a second bill. A journal damaged mid-file is
/// repaired keeping every intact record (the run's keys), and a folder of videos without a
/// journal is never started afresh without an explicit flag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_or_missing_journal_never_leads_to_paying_again() {
    let env = TestEnv::new(|c| c.seed = 38, TWELVE_JOBS).await;
    // Stop half way (a cap), so the repaired journal still has work to resume.
    assert_eq!(env.run(&["--max-spend", "4.20"]).await.code, Some(8));
    let journal = env.out.join("journal.jsonl");
    let text = std::fs::read_to_string(&journal).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    // Damage the first line (the run's start, with its id) and one in the middle.
    lines[0] = "{\"t\":\"run_st\u{0}".into();
    let middle = lines.len() / 2;
    lines[middle] = "garbage that is not JSON".into();
    std::fs::write(&journal, lines.join("\n") + "\n").unwrap();
    let refused = env.run(&["--max-spend", "100"]).await;
    assert_eq!(refused.code, Some(1), "{}", refused.stderr);
    assert!(refused.stderr.contains("--repair-journal"), "{}", refused.stderr);
    assert!(
        !refused.stderr.contains("to start this folder afresh"),
        "{}",
        refused.stderr
    );
    let repaired = env.run(&["--max-spend", "100", "--repair-journal"]).await;
    assert_eq!(repaired.code, Some(0), "{}", repaired.stderr);
    assert!(
        repaired.stderr.contains("set 2 damaged line(s) aside"),
        "{}",
        repaired.stderr
    );
    env.check_invariants(None);
    for (job, creates) in &env.sim.stats().counters.creates_per_client_request_id {
        assert_eq!(*creates, 1, "{job} was created {creates} times");
    }

    // The journal gone: the folder's videos are not paid for again unless asked.
    std::fs::remove_file(&journal).unwrap();
    let before = env.sim.stats().counters.tasks_created;
    let refused = env.run(&[]).await;
    assert_eq!(refused.code, Some(4), "{}", refused.stderr);
    assert!(refused.stderr.contains("--start-afresh"), "{}", refused.stderr);
    assert_eq!(env.sim.stats().counters.tasks_created, before, "nothing was sent");
}

/// Rule: the depth limit stops reading at once, in linear time, with the place. (200,000 levels
/// in 400 KB took the YAML parser minutes before its own limit answered.)
#[test]
fn deeply_nested_yaml_is_refused_at_its_place_before_the_parser_sees_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deep.yaml");
    std::fs::write(
        &path,
        format!("prompts: {}{}\n", "[".repeat(200_000), "]".repeat(200_000)),
    )
    .unwrap();
    let out = crate::common::run(&["validate", path.to_str().unwrap()]);
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(out.stderr.contains("deep.yaml:1:138"), "{}", out.stderr);
    assert!(out.stderr.contains("nested too deeply"), "{}", out.stderr);
}

/// `plan --json | head`: a reader that goes away is no error.
#[test]
fn a_closed_pipe_ends_plan_quietly() {
    // 1,000 jobs: a plan far larger than a pipe's buffer, so the writer meets the closed pipe.
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("big.yaml");
    let values: Vec<String> = (0..1000).map(|i| format!("v{i}")).collect();
    std::fs::write(
        &manifest,
        format!(
            "defaults: {{ model: kling-3.0 }}\nprompts:\n  - prompt: \"a lake, take {{n}}\"\n    vars: {{ n: [{}] }}\n",
            values.join(", ")
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kling-batch"))
        .args(["plan", "--json", manifest.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Read one byte, then close the pipe while the plan is still being written.
    use std::io::Read;
    let mut stdout = child.stdout.take().unwrap();
    let mut byte = [0u8; 1];
    stdout.read_exact(&mut byte).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("Broken pipe") && !stderr.contains("error"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

/// `--max-runtime 0s` submits nothing; the spend flags take large caps and refuse absurd paces
/// and time scales with a message instead of a panic or a silent clamp.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_values_of_the_run_flags_are_honoured_or_refused_clearly() {
    let env = TestEnv::new(|_| {}, TWO_JOBS).await;
    let out = env.run(&["--max-runtime", "0s"]).await;
    assert_eq!(out.code, Some(5), "{}", out.stderr);
    assert_eq!(env.sim.stats().counters.tasks_created, 0, "nothing submitted");
    let out = env.run(&["--max-spend", "1e10"]).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    env.check_invariants(None);
    for (flag, value) in [
        ("--rate", "1e-300"),
        ("--rate", "inf"),
        ("--time-scale", "1e308"),
        ("--max-spend", "0"),
    ] {
        let other = env.dir.path().join("never");
        let out = env.run(&[flag, value, "--out", other.to_str().unwrap()]).await;
        assert_eq!(out.code, Some(64), "{flag} {value}: {}", out.stderr);
        assert!(
            out.stderr.contains(flag) && !out.stderr.contains("panicked"),
            "{}",
            out.stderr
        );
        assert!(!other.exists(), "{flag} {value}: nothing written");
    }
    let out = crate::common::run(&[
        "run",
        "manifests/example.yaml",
        "--out",
        env.dir.path().join("s").to_str().unwrap(),
        "--simulate",
        "--time-scale",
        "1e308",
    ]);
    assert_eq!(out.code, 64, "{}", out.stderr);
}

/// A service that refuses every re-send of a create whose answer was lost (it checks the uploads
/// or the body before it looks the key up, contract §17): the job is left for a rerun after a few
/// refusals — not ten tries and ~110 s a run — its money held, nothing created or billed twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_replays_are_given_up_soon_with_their_money_held() {
    let env = TestEnv::new(
        |c| {
            c.faults = Faults {
                drop_after_create_rate: 1.0,
                resend_error_status: Some(422),
                resend_error_always: true,
                ..Faults::default()
            };
        },
        TWO_JOBS,
    )
    .await;
    let out = env.run(&["--max-spend", "none"]).await;
    assert_eq!(out.code, Some(5), "left for a rerun: {}", out.stderr);
    let rows = env.results();
    assert!(
        rows.iter()
            .all(|r| r["status"] == "unresolved" && r["error"].contains("under the same key was refused")),
        "{rows:?}"
    );
    let stats = env.sim.stats();
    assert_eq!(
        stats.counters.tasks_created, 2,
        "one task per job, made by the first sends"
    );
    assert!(
        stats.counters.resend_errors <= 2 * 3,
        "{} refused re-sends for 2 jobs",
        stats.counters.resend_errors
    );
    env.check_bills(None);
    // The tasks the first sends made are billed; what the run reports holds at least that.
    let summary: Value = serde_json::from_slice(&std::fs::read(env.out.join("summary.json")).unwrap()).unwrap();
    let held = summary["spent_usd"].as_f64().unwrap() + summary["reserved_usd"].as_f64().unwrap();
    assert!(
        held + 1e-9 >= stats.billed_usd,
        "the run holds ${held} for ${} billed",
        stats.billed_usd
    );
}
