//! Simulator settings and fault profiles. A profile is YAML (or JSON through the control route);
//! every field is optional and defaults to "no fault".

use crate::kling::Endpoint;
use crate::util::rng::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::time::Duration;

/// The key the simulator accepts when none is given (`--api-key`, else `RUNAPI_API_KEY`).
pub const DEFAULT_API_KEY: &str = "sk-sim-local";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RetryAfterForm {
    Seconds,
    Date,
    /// Seconds and HTTP-date in turn, so one run meets both.
    #[default]
    Alternate,
}

/// How long generation takes, in simulated seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum GenerationTime {
    /// The public guidance: 30–120 s, longer for longer and higher-resolution clips.
    #[default]
    Realistic,
    /// Uniform between two values, for benchmarks that want short, spread-out tasks.
    Uniform { min_seconds: f64, max_seconds: f64 },
    /// Log-normal around a median: most tasks near it, a long tail of slow ones.
    LogNormal { median_seconds: f64, sigma: f64 },
    /// Two populations: `slow_share` of the tasks near `slow_seconds`, the rest near
    /// `fast_seconds` (±10 % each).
    Bimodal {
        fast_seconds: f64,
        slow_seconds: f64,
        slow_share: f64,
    },
    /// Tasks made later take longer: from `from_seconds` at the start of the simulated clock to
    /// `to_seconds` after `over_seconds` (±10 %), as a service whose load grows.
    Drift {
        from_seconds: f64,
        to_seconds: f64,
        over_seconds: f64,
    },
}

impl GenerationTime {
    /// One task's generation time (simulated): `seconds` of video from `endpoint` with `body`,
    /// created `now` on the simulated clock.
    pub(super) fn draw(
        self,
        rng: &mut Rng,
        endpoint: Endpoint,
        body: &Map<String, Value>,
        seconds: u32,
        now: Duration,
    ) -> Duration {
        let simulated = match self {
            GenerationTime::Uniform {
                min_seconds,
                max_seconds,
            } => rng.between(min_seconds.max(0.0), max_seconds.max(min_seconds)),
            GenerationTime::Realistic => {
                // 30 s for a short 720p clip, up to 120 s for 15 s at 4k; motion control and
                // avatars sit at the slow end. ±10 % so tasks do not finish in lockstep.
                let length = (f64::from(seconds.clamp(3, 15)) - 3.0) / 12.0;
                let resolution = match body.get("output_resolution").and_then(Value::as_str) {
                    Some("4k") => 30.0,
                    Some("1080p") => 15.0,
                    _ => 0.0,
                };
                let endpoint_extra = match endpoint {
                    Endpoint::MotionControl | Endpoint::AiAvatar => 30.0,
                    _ => 0.0,
                };
                let base = 30.0 + 60.0 * length + resolution + endpoint_extra;
                (base * rng.between(0.9, 1.1)).clamp(30.0, 120.0)
            }
            GenerationTime::LogNormal { median_seconds, sigma } => {
                // Box–Muller: one standard normal draw from two uniform ones.
                let u1 = rng.between(f64::MIN_POSITIVE, 1.0);
                let u2 = rng.between(0.0, 1.0);
                let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                median_seconds.max(0.0) * (sigma.max(0.0) * z).exp()
            }
            GenerationTime::Bimodal {
                fast_seconds,
                slow_seconds,
                slow_share,
            } => {
                let centre = if rng.chance(slow_share) {
                    slow_seconds
                } else {
                    fast_seconds
                };
                centre.max(0.0) * rng.between(0.9, 1.1)
            }
            GenerationTime::Drift {
                from_seconds,
                to_seconds,
                over_seconds,
            } => {
                let progress = (now.as_secs_f64() / over_seconds.max(f64::MIN_POSITIVE)).min(1.0);
                let centre = from_seconds + (to_seconds - from_seconds) * progress;
                centre.max(0.0) * rng.between(0.9, 1.1)
            }
        };
        Duration::from_secs_f64(simulated)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// API requests per (real) second before 429; `None` means no limit.
    pub rate_limit_per_second: Option<f64>,
    /// Requests allowed in a burst above the rate.
    pub rate_limit_burst: f64,
    pub retry_after: RetryAfterForm,
    /// Probability that any request (API or file) answers a 5xx without doing anything.
    pub server_error_rate: f64,
    /// Added delay before every response, in milliseconds, drawn between the two values.
    pub latency_ms: (u64, u64),
    /// Probability that a response is held `slow_ms` longer (past a client's timeout).
    pub slow_rate: f64,
    pub slow_ms: u64,
    /// Probability that a create makes its task and then drops the connection without answering.
    pub drop_after_create_rate: f64,
    /// Probability that a task ends `failed` (not billed).
    pub task_failure_rate: f64,
    /// Probability that a download stops short of its Content-Length.
    pub truncate_download_rate: f64,
    /// Answer 200 with the whole file even when a `Range` is asked for.
    pub ignore_range: bool,
    /// How long a signed video URL stays valid, in real seconds.
    pub url_ttl_seconds: u64,
    /// Probability that a status answer is hostile: a 2 MiB body, an unknown status, HTML, a body
    /// without an id, or a 503 with a garbage `Retry-After`. The task itself is unaffected.
    pub weird_answer_rate: f64,
    /// A create whose Idempotency-Key already made a task is answered once (per key) with this
    /// status instead of the replay: 401 (a key rotated mid-run, or auth checked before the
    /// idempotency lookup), 402, 409 or 422.
    pub resend_error_status: Option<u16>,
    /// With `resend_error_status`: every resend is answered with it, not only the first (a
    /// service that checks an expired upload before it looks the key up, contract §17).
    pub resend_error_always: bool,
    /// The first N status reads of every task answer 404 (an eventually consistent read).
    pub not_found_reads: u32,
    /// The first N status reads that find a task completed leave out `videos`.
    pub completed_without_url_reads: u32,
    /// Price quotes are this share of the price (0.01: a quote of about a cent).
    pub quote_factor: f64,
    /// Completed tasks are billed this multiple of their price (3: three times the quote).
    pub bill_factor: f64,
    /// Error messages and failed tasks' `error` quote the request's `Authorization` header.
    pub echo_key: bool,
    /// How `echo_key` spells what it quotes: as sent, upper-cased, or as hex of its bytes.
    pub echo_key_as: EchoForm,
    /// Text a failed task's `error` carries after its reason (what a service may quote back from
    /// a request: a prompt, an instruction planted in one).
    pub failure_text: Option<String>,
    /// Probability that a `Range` request is answered 206 from an earlier offset than asked.
    pub misaligned_range_rate: f64,
    /// Probability that a download is answered 200 without Content-Length (the body ends when the
    /// connection closes) and stops after half the bytes.
    pub no_length_rate: f64,
    /// Probability that a download trickles at `trickle_bytes_per_second`.
    pub trickle_rate: f64,
    pub trickle_bytes_per_second: u64,
    /// How long a confirmed upload's URL stays valid, in real seconds (one hour at RunAPI).
    pub upload_ttl_seconds: u64,
    /// The service's clock, in seconds from the client's: the dates it gives (an upload's
    /// `created_at` and `expires_at`) are that far off (-7200: the client's clock runs 2 h ahead).
    pub clock_offset_seconds: i64,
    /// Probability that a `PUT` to an upload URL answers 500 without taking the bytes.
    pub upload_failure_rate: f64,
    /// Milliseconds the upload host waits after each chunk it receives (a slow upload).
    pub upload_slow_ms: u64,
    /// The upload host takes whatever bytes arrive, without checking them against Content-MD5
    /// (a storage host need not): only the client can notice a file that changed mid-upload.
    pub upload_unchecked: bool,
    /// `GET /api/v1/me` and `/api/v1/me/balance` answer 404, as a service without them would.
    pub no_account_routes: bool,
    /// Probability that a continuation of a completed task is answered 409
    /// `source_task_not_ready` all the same (its completion not yet seen where creates look).
    pub continuation_not_ready_rate: f64,
}

/// How a careless service spells a key it quotes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EchoForm {
    #[default]
    Verbatim,
    Upper,
    Hex,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            rate_limit_per_second: None,
            rate_limit_burst: 1.0,
            retry_after: RetryAfterForm::Alternate,
            server_error_rate: 0.0,
            latency_ms: (0, 0),
            slow_rate: 0.0,
            slow_ms: 0,
            drop_after_create_rate: 0.0,
            task_failure_rate: 0.0,
            truncate_download_rate: 0.0,
            ignore_range: false,
            url_ttl_seconds: 3600,
            upload_ttl_seconds: 3600,
            clock_offset_seconds: 0,
            upload_failure_rate: 0.0,
            upload_slow_ms: 0,
            upload_unchecked: false,
            weird_answer_rate: 0.0,
            resend_error_status: None,
            resend_error_always: false,
            not_found_reads: 0,
            completed_without_url_reads: 0,
            quote_factor: 1.0,
            bill_factor: 1.0,
            echo_key: false,
            echo_key_as: EchoForm::Verbatim,
            failure_text: None,
            misaligned_range_rate: 0.0,
            no_length_rate: 0.0,
            trickle_rate: 0.0,
            trickle_bytes_per_second: 1,
            no_account_routes: false,
            continuation_not_ready_rate: 0.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    pub api_key: String,
    pub seed: u64,
    /// Simulated seconds per real second; 0 selects a manual clock that only tests move.
    pub time_scale: f64,
    pub generation: GenerationTime,
    /// Starting balance in cents.
    pub balance_cents: u64,
    /// Size of every served video in bytes (a valid MP4 padded with a `free` box).
    pub video_bytes: u64,
    /// Serve videos from a second port, a different origin from the API.
    pub separate_file_origin: bool,
    /// Answer a status request for a task id it never made as a finished, unbilled task. `run
    /// --simulate` sets it: its simulator lives only as long as the run, so a resumed run asks
    /// about tasks an earlier simulator made.
    pub adopt_unknown_tasks: bool,
    pub faults: Faults,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            api_key: DEFAULT_API_KEY.to_string(),
            seed: 1,
            time_scale: 1.0,
            generation: GenerationTime::Realistic,
            balance_cents: 100_000,
            video_bytes: 64 * 1024,
            separate_file_origin: false,
            adopt_unknown_tasks: false,
            faults: Faults::default(),
        }
    }
}

impl SimConfig {
    /// Reads a YAML profile; the file may hold a whole config or only `faults:`.
    pub fn from_yaml(text: &str) -> Result<SimConfig, String> {
        serde_yaml::from_str(text).map_err(|e| e.to_string())
    }
}
