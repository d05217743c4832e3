//! Helpers shared by the suite: running the real binary from the repository root.

use assert_cmd::Command;
use std::path::PathBuf;

/// A manifest's plan from YAML text, without a file; the problems as one text if refused.
pub(crate) fn plan_from_yaml(text: &str) -> Result<kling_batch::plan::Plan, String> {
    let manifest = kling_batch::manifest::from_yaml(text, std::path::Path::new("manifest.yaml"))
        .map_err(|e| format!("{:#?}", e.diagnostics))?;
    kling_batch::plan::expand(&manifest).map_err(|d| d.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))
}

/// A text-to-video task as the simulator's status route shows it (asserting a 200).
pub(crate) async fn text_to_video_task(
    sim: &kling_batch::sim::SimHandle,
    client: &reqwest::Client,
    id: &str,
) -> serde_json::Value {
    let r = client
        .get(format!("{}/api/v1/kling/text_to_video/{id}", sim.base_url()))
        .bearer_auth(sim.api_key())
        .send()
        .await
        .expect("the simulator answers");
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    r.json().await.expect("a JSON task")
}

pub(crate) fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `kling-batch` binary, run from the repository root so paths in output are stable.
pub(crate) fn kling_batch() -> Command {
    let mut cmd = Command::cargo_bin("kling-batch").expect("the binary is built for integration tests");
    cmd.current_dir(repo_root());
    cmd.env_remove("RUNAPI_API_KEY").env_remove("RUNAPI_BASE_URL");
    cmd
}

pub(crate) struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub(crate) fn run(args: &[&str]) -> Output {
    let out = kling_batch().args(args).output().expect("the binary runs");
    Output {
        code: out.status.code().expect("exited, not killed by a signal"),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    }
}

/// A temp folder, an in-process simulator, a manifest, and the real binary pointed at both.
pub(crate) struct TestEnv {
    pub sim: kling_batch::sim::SimHandle,
    pub dir: tempfile::TempDir,
    pub manifest: PathBuf,
    pub out: PathBuf,
    time_scale: f64,
    /// Whether the runner is told the simulator's time scale (`--time-scale`, a hint).
    pub hint: bool,
}

/// 12 jobs of 5 s at 720p on kling-3.0: $0.70 each, $8.40 in all.
pub(crate) const TWELVE_JOBS: &str = r#"
defaults: { model: kling-3.0, duration_seconds: 5 }
prompts: ["a lake at dawn", "a river in spring", "a sea in a storm", "a forest at night"]
matrix: { aspect_ratio: ["16:9", "9:16", "1:1"] }
"#;

pub(crate) struct RunOutput {
    pub code: Option<i32>,
    pub stderr: String,
}

impl TestEnv {
    pub(crate) async fn new(configure: impl FnOnce(&mut kling_batch::sim::SimConfig), manifest: &str) -> TestEnv {
        let mut config = kling_batch::sim::SimConfig {
            time_scale: 1000.0,
            video_bytes: 50_000,
            ..Default::default()
        };
        configure(&mut config);
        let time_scale = config.time_scale;
        let sim = kling_batch::sim::start(config).await.expect("the simulator starts");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sweep.yaml");
        std::fs::write(&path, manifest).unwrap();
        let out = dir.path().join("out");
        TestEnv {
            sim,
            manifest: path,
            out,
            dir,
            time_scale,
            hint: true,
        }
    }

    /// A simulator seeded with `seed` and the given faults, the rest as `new` sets it.
    pub(crate) async fn faulty(seed: u64, faults: kling_batch::sim::Faults, manifest: &str) -> TestEnv {
        TestEnv::new(
            |c| {
                c.seed = seed;
                c.faults = faults;
            },
            manifest,
        )
        .await
    }

    pub(crate) fn command(&self, extra: &[&str]) -> tokio::process::Command {
        self.command_to(self.out.as_os_str(), extra)
    }

    /// `command` with another `--out` (an `s3://` address).
    pub(crate) fn command_to(&self, out: &std::ffi::OsStr, extra: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_kling-batch"));
        cmd.arg("run")
            .arg(&self.manifest)
            .arg("--out")
            .arg(out)
            .args(["--api-base", self.sim.base_url()])
            .args(
                self.hint
                    .then(|| ["--time-scale".to_string(), self.time_scale.to_string()])
                    .into_iter()
                    .flatten(),
            )
            .args(["--rate", "400"])
            .args(extra)
            .env("RUNAPI_API_KEY", self.sim.api_key())
            .env("RUNAPI_CONFIG_DIR", self.dir.path().join("no-config"))
            .env_remove("RUNAPI_BASE_URL")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    pub(crate) async fn run(&self, extra: &[&str]) -> RunOutput {
        let out = self.command(extra).output().await.expect("the binary runs");
        RunOutput {
            code: out.status.code(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// results.csv as one map per row.
    pub(crate) fn results(&self) -> Vec<std::collections::HashMap<String, String>> {
        read_rows(&self.out.join("results.csv"))
    }

    /// The invariants every finished run keeps: each completed row's file is on disk with the
    /// recorded size and hash, no partial download is left, no job was billed twice, and the
    /// bill is within `cap`.
    pub(crate) fn check_invariants(&self, cap_usd: Option<f64>) {
        self.check(cap_usd, true);
    }

    /// The spend the run reports, in summary.json and (when every paid job is listed) results.csv,
    /// is what the simulator billed.
    pub(crate) fn check_spend_reported(&self, every_job_listed: bool) {
        self.check_spend_reported_in(&self.out, every_job_listed);
    }

    /// `check_spend_reported` for a run whose summary.json and results.csv are in `place` (a
    /// bucket's folder on the S3 server's disk).
    pub(crate) fn check_spend_reported_in(&self, place: &std::path::Path, every_job_listed: bool) {
        let billed = self.sim.stats().billed_usd;
        let summary: serde_json::Value =
            serde_json::from_slice(&std::fs::read(place.join("summary.json")).expect("summary.json exists"))
                .expect("summary.json is JSON");
        let reported = summary["spent_usd"].as_f64().expect("summary.json has spent_usd");
        assert!(
            (reported - billed).abs() < 1e-6,
            "summary.json reports ${reported} spent, the service billed ${billed}"
        );
        let rows = read_rows(&place.join("results.csv"));
        let listed: f64 = rows.iter().filter_map(|r| r["cost_usd"].parse::<f64>().ok()).sum();
        let tolerance = 0.0001 * rows.len() as f64;
        if every_job_listed {
            assert!(
                (listed - billed).abs() <= tolerance,
                "results.csv lists ${listed} of costs, the service billed ${billed}"
            );
        } else {
            assert!(
                listed <= billed + tolerance,
                "results.csv lists ${listed}, billed ${billed}"
            );
        }
    }

    /// The money invariants alone, for a run that stopped before the end (a cap, a deadline): no
    /// task per key or job billed twice, the bill within `cap`, the spend reported is the bill.
    pub(crate) fn check_money(&self, cap_usd: Option<f64>) {
        self.check_bills(cap_usd);
        self.check_spend_reported(true);
    }

    /// Nothing created or billed twice (per key, per job, per request body), within `cap`.
    pub(crate) fn check_bills(&self, cap_usd: Option<f64>) {
        let stats = self.sim.stats();
        for (job, billed) in &stats.counters.billed_per_client_request_id {
            assert!(*billed <= 1, "{job} was billed {billed} times");
        }
        for (key, created) in &stats.counters.creates_per_idempotency_key {
            assert!(*created <= 1, "{key} created {created} tasks");
        }
        // No suite manifest repeats a request (`repeat:`), so no body is ever billed twice.
        for (body, billed) in &stats.counters.billed_per_body {
            assert!(*billed <= 1, "the request body {body} was billed {billed} times");
        }
        if let Some(cap) = cap_usd {
            assert!(
                stats.billed_usd <= cap + 1e-9,
                "billed {} over the {cap} cap",
                stats.billed_usd
            );
        }
    }

    fn check(&self, cap_usd: Option<f64>, every_job_listed: bool) {
        for row in self.results() {
            // A paid job the manifest no longer has keeps its verified video too.
            let kept = row["status"] == "not_in_manifest" && !row["video_path"].is_empty();
            if row["status"] == "completed" || kept {
                let bytes = std::fs::read(self.out.join(&row["video_path"])).expect("the video is on disk");
                assert_eq!(bytes.len().to_string(), row["bytes"], "{}", row["job_id"]);
                let sum = format!("blake3:{}", blake3::hash(&bytes).to_hex());
                assert_eq!(sum, row["checksum"], "{}", row["job_id"]);
                // …and they are the bytes the service serves for that task, not merely the bytes
                // that arrived.
                let served = self.sim.video_of(&row["task_id"]);
                assert!(
                    bytes == served,
                    "{}: the file differs from the task's video",
                    row["job_id"]
                );
            } else if row["status"] != "not_in_manifest" {
                assert!(
                    row["status"] == "failed" || row["status"] == "skipped",
                    "a finished run leaves every job completed, failed or skipped: {row:?}"
                );
                assert!(!row["error"].is_empty(), "a failed job says why: {row:?}");
            }
        }
        let parts: Vec<_> = std::fs::read_dir(self.out.join("videos"))
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "part"))
            .collect();
        assert!(parts.is_empty(), "stray partial downloads: {parts:?}");
        self.check_bills(cap_usd);
        self.check_spend_reported(every_job_listed);
    }
}

/// Waits until `ready` holds, looking every 10 ms, for at most `limit`; fails saying what it
/// waited for. Every wait in the suite has a deadline and a reason.
pub(crate) async fn wait_until(limit: std::time::Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !ready() {
        assert!(std::time::Instant::now() < deadline, "waited {limit:?} for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// A CSV file as one map per row.
pub(crate) fn read_rows(path: &std::path::Path) -> Vec<std::collections::HashMap<String, String>> {
    let mut reader = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let headers = reader.headers().unwrap().clone();
    reader
        .records()
        .map(|r| {
            headers
                .iter()
                .zip(r.unwrap().iter())
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}
