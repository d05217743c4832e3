//! The simulator over real HTTP: contract behaviour, each fault alone, and the counters. Time is
//! a manual clock moved by the test, so nothing waits on wall-clock sleeps.

use kling_batch::sim::{self, Faults, SimConfig, SimHandle};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::time::Duration;

const T2V: &str = "/api/v1/kling/text_to_video";

async fn start(configure: impl FnOnce(&mut SimConfig)) -> (SimHandle, Client) {
    let mut config = SimConfig {
        time_scale: 0.0,
        video_bytes: 20_000,
        ..SimConfig::default()
    };
    configure(&mut config);
    let handle = sim::start(config).await.expect("the simulator starts");
    let client = Client::builder().no_proxy().build().unwrap();
    (handle, client)
}

fn lake() -> Value {
    json!({"model": "kling-3.0", "prompt": "a lake", "duration_seconds": 5})
}

async fn create(sim: &SimHandle, client: &Client, body: &Value, key: Option<&str>) -> Response {
    let mut request = client
        .post(format!("{}{T2V}", sim.base_url()))
        .bearer_auth(sim.api_key())
        .json(body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    request.send().await.expect("the simulator answers")
}

async fn get_task(sim: &SimHandle, client: &Client, id: &str) -> Value {
    crate::common::text_to_video_task(sim, client, id).await
}

async fn completed_task(sim: &SimHandle, client: &Client) -> Value {
    let created: Value = create(sim, client, &lake(), None).await.json().await.unwrap();
    sim.advance(Duration::from_secs(121));
    let task = get_task(sim, client, created["id"].as_str().unwrap()).await;
    assert_eq!(task["status"], "completed", "{task}");
    task
}

async fn error_of(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let body: Value = response.json().await.expect("errors have a JSON body");
    assert!(body["error"]["message"].is_string(), "{body}");
    (status, body)
}

#[tokio::test]
async fn a_task_lives_pending_processing_completed_and_is_billed_once() {
    let (sim, client) = start(|_| {}).await;
    let response = client
        .post(format!("{}{T2V}", sim.base_url()))
        .bearer_auth(sim.api_key())
        .header("X-Client-Request-Id", "job-1")
        .json(&lake())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let header = |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_string());
    assert_eq!(header("x-client-request-id").as_deref(), Some("job-1"));
    let task_header = header("x-runapi-task-id").expect("X-RunAPI-Task-Id");
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["id"], created["task_id"]);
    assert_eq!(created["id"], task_header.as_str());
    assert_eq!(created["status"], "pending");
    assert_eq!(created["task_replayed"], false);
    assert_eq!(created["billing"]["reservation"]["amount_cents"], 70);
    let id = created["id"].as_str().unwrap();

    assert_eq!(get_task(&sim, &client, id).await["status"], "pending");
    sim.advance(Duration::from_secs(20));
    assert_eq!(get_task(&sim, &client, id).await["status"], "processing");
    sim.advance(Duration::from_secs(101));
    let done = get_task(&sim, &client, id).await;
    assert_eq!(done["status"], "completed");
    assert_eq!(done["billing"]["settlement"]["charged_amount_cents"], 70);
    assert_eq!(done["usage"]["cost"], 0.7);
    let url = done["videos"][0]["url"].as_str().unwrap();
    let video = client.get(url).send().await.unwrap();
    assert_eq!(video.status(), StatusCode::OK);
    assert_eq!(video.headers()["content-type"], "video/mp4");
    let bytes = video.bytes().await.unwrap();
    assert_eq!(bytes.len(), 20_000);
    assert_eq!(&bytes[4..8], b"ftyp", "an MP4 starts with its ftyp box");

    get_task(&sim, &client, id).await;
    let stats = sim.stats();
    assert_eq!(stats.counters.tasks_created, 1);
    assert_eq!(stats.counters.tasks_completed, 1);
    assert_eq!(stats.counters.polls, 4);
    assert_eq!(
        stats.billed_micro_cents, 70_000_000,
        "billed once however often it is read"
    );
    assert_eq!(stats.counters.billed_per_client_request_id["job-1"], 1);
    assert_eq!(stats.counters.downloads, 1);
    assert_eq!(stats.download_bytes, 20_000);
    assert_eq!(stats.balance_cents, 100_000.0 - 70.0);
    assert_eq!(stats.counters.requests["POST /api/v1/kling/{action}"]["200"], 1);
    assert_eq!(stats.counters.requests["GET /api/v1/kling/{action}/{id}"]["200"], 4);

    let over_http: Value = client
        .get(format!("{}/__sim/stats", sim.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(over_http["tasks_created"], 1);
    assert_eq!(over_http["billed_micro_cents"], 70_000_000);
}

#[tokio::test]
async fn idempotency_key_replays_the_task_or_conflicts() {
    let (sim, client) = start(|_| {}).await;
    let first: Value = create(&sim, &client, &lake(), Some("key-1"))
        .await
        .json()
        .await
        .unwrap();
    let again: Value = create(&sim, &client, &lake(), Some("key-1"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["task_replayed"], true);
    let other = json!({"model": "kling-3.0", "prompt": "a river", "duration_seconds": 5});
    let (status, body) = error_of(create(&sim, &client, &other, Some("key-1")).await).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "request_conflict");
    let stats = sim.stats();
    assert_eq!(
        (
            stats.counters.tasks_created,
            stats.counters.replays,
            stats.counters.conflicts
        ),
        (1, 1, 1)
    );
    assert_eq!(stats.counters.creates_per_idempotency_key["key-1"], 1);
    assert_eq!(stats.counters.creates_per_body.values().copied().max(), Some(1));
}

#[tokio::test]
async fn auth_validation_and_not_found_use_the_contract_error_body() {
    let (sim, client) = start(|c| c.api_key = "sk-test-123".into()).await;
    let url = format!("{}{T2V}", sim.base_url());
    let r = client.post(&url).json(&lake()).send().await.unwrap();
    assert_eq!(error_of(r).await.0, StatusCode::UNAUTHORIZED);
    let r = client
        .post(&url)
        .bearer_auth("sk-other")
        .json(&lake())
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await.0, StatusCode::UNAUTHORIZED);

    let bad = json!({"model": "kling-3.0", "prompt": "a", "duration_seconds": 99});
    let (status, body) = error_of(create(&sim, &client, &bad, None).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["message"], "duration_seconds must be between 3 and 15");
    let (status, body) = error_of(create(&sim, &client, &json!({"model": "kling-9", "prompt": "a"}), None).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("model must be one of: kling-3.0,")
    );
    let r = client
        .post(&url)
        .bearer_auth(sim.api_key())
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await.0, StatusCode::BAD_REQUEST);
    let r = client
        .post(format!("{}/api/v1/kling/dance", sim.base_url()))
        .bearer_auth(sim.api_key())
        .json(&lake())
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await.0, StatusCode::NOT_FOUND);
    let r = client
        .get(format!("{url}/no-such-task"))
        .bearer_auth(sim.api_key())
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await.0, StatusCode::NOT_FOUND);
    // A task is only found under its own action.
    let created: Value = create(&sim, &client, &lake(), None).await.json().await.unwrap();
    let wrong_action = format!(
        "{}/api/v1/kling/image_to_video/{}",
        sim.base_url(),
        created["id"].as_str().unwrap()
    );
    let r = client
        .get(wrong_action)
        .bearer_auth(sim.api_key())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(sim.stats().counters.requests["POST /api/v1/kling/{action}"]["401"], 2);
}

#[tokio::test]
async fn balance_is_reserved_then_settled_and_402_when_it_runs_out() {
    let (sim, client) = start(|c| c.balance_cents = 100).await;
    assert_eq!(create(&sim, &client, &lake(), None).await.status(), StatusCode::OK);
    let (status, body) =
        error_of(create(&sim, &client, &json!({"model": "kling-3.0", "prompt": "b"}), None).await).await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(body["error"]["code"], "insufficient_credits");
    let balance: Value = client
        .get(format!("{}/api/v1/me/balance", sim.base_url()))
        .bearer_auth(sim.api_key())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(balance["balance_cents"], 30, "70 of 100 cents are reserved");
    sim.advance(Duration::from_secs(121));
    sim.set_balance(1_000);
    assert_eq!(
        create(&sim, &client, &json!({"model": "kling-3.0", "prompt": "b"}), None)
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(sim.stats().counters.insufficient_credits, 1);
}

#[tokio::test]
async fn failed_tasks_carry_their_error_and_are_refunded() {
    let (sim, client) = start(|c| c.faults.task_failure_rate = 1.0).await;
    let created: Value = create(&sim, &client, &lake(), None).await.json().await.unwrap();
    sim.advance(Duration::from_secs(121));
    let task = get_task(&sim, &client, created["id"].as_str().unwrap()).await;
    assert_eq!(task["status"], "failed");
    assert!(task["error"].as_str().unwrap().starts_with("Generation failed"));
    assert!(
        task["billing"]["refund"]["refunded_at"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    assert!(task.get("videos").is_none());
    let stats = sim.stats();
    assert_eq!((stats.counters.tasks_failed, stats.billed_micro_cents), (1, 0));
    assert_eq!(stats.balance_cents, 100_000.0);
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after_in_both_forms() {
    let (sim, client) = start(|c| {
        c.faults.rate_limit_per_second = Some(0.01);
        c.faults.rate_limit_burst = 1.0;
    })
    .await;
    assert_eq!(create(&sim, &client, &lake(), None).await.status(), StatusCode::OK);
    let mut forms = Vec::new();
    for _ in 0..4 {
        let r = create(&sim, &client, &lake(), None).await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        forms.push(r.headers()["retry-after"].to_str().unwrap().to_string());
        assert_eq!(error_of(r).await.1["error"]["code"], "rate_limited");
    }
    let seconds: Vec<u64> = forms.iter().filter_map(|f| f.parse().ok()).collect();
    let dates: Vec<_> = forms.iter().filter_map(|f| httpdate::parse_http_date(f).ok()).collect();
    assert_eq!((seconds.len(), dates.len()), (2, 2), "{forms:?}");
    assert!(seconds.iter().all(|s| *s >= 1));
    assert!(dates.iter().all(|d| *d > std::time::SystemTime::now()));
    assert_eq!(sim.stats().counters.rate_limited, 4);
    assert_eq!(sim.stats().counters.tasks_created, 1);
}

#[tokio::test]
async fn server_errors_hit_any_route_without_side_effects() {
    let (sim, client) = start(|c| c.faults.server_error_rate = 1.0).await;
    let r = create(&sim, &client, &lake(), None).await;
    assert!([500, 502, 503, 504].contains(&r.status().as_u16()), "{}", r.status());
    let r = client
        .get(format!("{}/api/v1/me/balance", sim.base_url()))
        .bearer_auth(sim.api_key())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_server_error());
    assert_eq!(sim.stats().counters.tasks_created, 0);
    assert_eq!(sim.stats().counters.server_errors, 2);
}

#[tokio::test]
async fn a_dropped_create_leaves_a_task_that_the_same_key_recovers() {
    let (sim, client) = start(|c| c.faults.drop_after_create_rate = 1.0).await;
    let sent = client
        .post(format!("{}{T2V}", sim.base_url()))
        .bearer_auth(sim.api_key())
        .header("Idempotency-Key", "k")
        .json(&lake())
        .send()
        .await;
    let error = sent.expect_err("the connection closes without an answer");
    assert!(!error.is_status() && !error.is_timeout(), "{error:?}");
    assert_eq!(sim.stats().counters.tasks_created, 1);
    assert_eq!(sim.stats().counters.dropped_connections, 1);
    sim.set_faults(Faults::default());
    let replay: Value = create(&sim, &client, &lake(), Some("k")).await.json().await.unwrap();
    assert_eq!(replay["task_replayed"], true);
    assert_eq!(sim.stats().counters.tasks_created, 1);
}

#[tokio::test]
async fn slow_responses_outlast_a_client_timeout_after_doing_the_work() {
    let (sim, client) = start(|c| {
        c.faults.slow_rate = 1.0;
        c.faults.slow_ms = 2_000;
    })
    .await;
    let sent = client
        .post(format!("{}{T2V}", sim.base_url()))
        .bearer_auth(sim.api_key())
        .timeout(Duration::from_millis(200))
        .json(&lake())
        .send()
        .await;
    assert!(sent.expect_err("the client gives up first").is_timeout());
    assert_eq!(
        sim.stats().counters.tasks_created,
        1,
        "the task exists though the client never heard"
    );
}

#[tokio::test]
async fn downloads_honour_range_and_refuse_what_cannot_be_satisfied() {
    let (sim, client) = start(|_| {}).await;
    let task = completed_task(&sim, &client).await;
    let url = task["videos"][0]["url"].as_str().unwrap();
    let whole = client.get(url).send().await.unwrap().bytes().await.unwrap();
    let again = client.get(url).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(
        Sha256::digest(&whole),
        Sha256::digest(&again),
        "the same URL serves the same bytes"
    );

    let part = client.get(url).header("Range", "bytes=10000-").send().await.unwrap();
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.headers()["content-range"], "bytes 10000-19999/20000");
    assert_eq!(part.bytes().await.unwrap(), whole[10_000..]);
    let tail = client
        .get(url)
        .header("Range", "bytes=-100")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(tail, whole[19_900..]);
    let beyond = client.get(url).header("Range", "bytes=20000-").send().await.unwrap();
    assert_eq!(beyond.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(beyond.headers()["content-range"], "bytes */20000");

    let other = completed_task(&sim, &client).await;
    let other_bytes = client
        .get(other["videos"][0]["url"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_ne!(
        Sha256::digest(&whole),
        Sha256::digest(&other_bytes),
        "each task has its own file"
    );

    sim.set_faults(Faults {
        ignore_range: true,
        ..Faults::default()
    });
    let ignored = client.get(url).header("Range", "bytes=10000-").send().await.unwrap();
    assert_eq!(ignored.status(), StatusCode::OK);
    assert_eq!(ignored.bytes().await.unwrap(), whole);
}

#[tokio::test]
async fn truncated_downloads_stop_short_of_their_length() {
    let (sim, client) = start(|c| c.faults.truncate_download_rate = 1.0).await;
    let task = completed_task(&sim, &client).await;
    let response = client
        .get(task["videos"][0]["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.content_length(), Some(20_000));
    assert!(
        response.bytes().await.is_err(),
        "the body ends before its Content-Length"
    );
    assert_eq!(sim.stats().counters.truncated_downloads, 1);
    assert_eq!(sim.stats().download_bytes, 10_000);
}

#[tokio::test]
async fn video_urls_expire_and_a_fresh_read_of_the_task_signs_a_new_one() {
    let (sim, client) = start(|c| c.faults.url_ttl_seconds = 0).await;
    let task = completed_task(&sim, &client).await;
    let expired = client
        .get(task["videos"][0]["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(expired.status(), StatusCode::FORBIDDEN);
    sim.set_faults(Faults::default());
    let fresh = get_task(&sim, &client, task["id"].as_str().unwrap()).await;
    let ok = client
        .get(fresh["videos"][0]["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let url = fresh["videos"][0]["url"].as_str().unwrap();
    let tampered = url.replace("sig=", "sig=0");
    assert_eq!(
        client.get(tampered).send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn videos_can_come_from_another_origin_which_counts_authorization_headers() {
    let (sim, client) = start(|c| c.separate_file_origin = true).await;
    assert_ne!(sim.base_url(), sim.file_base_url());
    let task = completed_task(&sim, &client).await;
    let url = task["videos"][0]["url"].as_str().unwrap();
    assert!(url.starts_with(sim.file_base_url()), "{url}");
    assert_eq!(client.get(url).send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        client.get(url).bearer_auth("leaked").send().await.unwrap().status(),
        StatusCode::OK
    );
    let api_on_file_origin = client
        .get(format!("{}{T2V}/x", sim.file_base_url()))
        .bearer_auth(sim.api_key())
        .send()
        .await
        .unwrap();
    assert_eq!(api_on_file_origin.status(), StatusCode::NOT_FOUND);
    let stats = sim.stats();
    assert_eq!(stats.counters.file_requests, 2);
    assert_eq!(stats.counters.file_requests_with_authorization, 1);
}

#[tokio::test]
async fn prices_come_from_the_planner_table() {
    let (sim, client) = start(|_| {}).await;
    let quote: Value = client
        .post(format!("{}/api/v1/price_quotes", sim.base_url()))
        .json(&json!({"service": "kling", "action": "text_to_video", "model": "kling-3.0",
                      "params": {"prompt": "a", "duration_seconds": 10, "output_resolution": "1080p", "enable_sound": true}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(quote["price_quote"]["reservation_amount_cents"], 270);
    assert_eq!(quote["price_quote"]["currency"], "USD");
    let schedules: Value = client
        .get(format!(
            "{}/api/v1/price_schedules?service=kling&action=text_to_video&model=kling-v2.5-turbo-text-to-video-pro",
            sim.base_url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let list = schedules["price_schedules"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["unit_price_cents"], 9.0);
}

#[tokio::test]
async fn the_sim_command_prints_its_url_serves_and_stops_on_ctrl_c() {
    use std::io::{BufRead, BufReader, Read};
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_kling-batch"))
        .args([
            "sim",
            "--port",
            "0",
            "--time-scale",
            "1000",
            "--api-key",
            "sk-flag-key-1",
        ])
        .env_remove("RUNAPI_API_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let client = Client::builder().no_proxy().build().unwrap();
    let created = client
        .post(format!("{url}{T2V}"))
        .bearer_auth("sk-flag-key-1")
        .json(&lake())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::OK);
    let wrong = client
        .post(format!("{url}{T2V}"))
        .bearer_auth(sim::DEFAULT_API_KEY)
        .json(&lake())
        .send()
        .await
        .unwrap();
    assert_eq!(
        wrong.status(),
        StatusCode::UNAUTHORIZED,
        "only the configured key is accepted"
    );
    let stats: Value = client
        .get(format!("{url}/__sim/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["tasks_created"], 1);

    let interrupted = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "Ctrl-C is a clean stop");
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(stderr.contains("simulator stopped"), "{stderr}");
    assert!(
        !stderr.contains("sk-flag-key-1"),
        "a key given to the simulator is not printed: {stderr}"
    );
}

#[test]
fn the_readme_fault_profile_parses() {
    let readme = std::fs::read_to_string(crate::common::repo_root().join("README.md")).unwrap();
    let start = readme
        .find("Faults come from a YAML profile")
        .expect("the README documents profiles");
    let block = readme[start..]
        .split("```yaml\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    let config = SimConfig::from_yaml(block).expect("the README's profile is valid");
    assert_eq!(config.seed, 7);
    assert_eq!(config.faults.latency_ms, (0, 50));
    assert_eq!(config.faults.rate_limit_per_second, Some(20.0));
    assert!(matches!(config.generation, sim::GenerationTime::Uniform { min_seconds, .. } if min_seconds == 0.2));
}

#[test]
fn a_bad_profile_is_refused_with_the_invalid_input_code() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("faults.yaml");
    std::fs::write(&profile, "faults:\n  task_failure_rte: 0.5\n").unwrap();
    let out = crate::common::run(&["sim", "--port", "0", "--faults", profile.to_str().unwrap()]);
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(
        out.stderr.contains("faults.yaml") && out.stderr.contains("task_failure_rte"),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout.is_empty(),
        "no URL is printed for a simulator that did not start"
    );
}

#[tokio::test]
async fn task_timings_count_reads_and_when_a_finished_task_was_first_seen() {
    let (sim, client) = start(|c| {
        c.generation = sim::GenerationTime::Uniform {
            min_seconds: 40.0,
            max_seconds: 40.0,
        }
    })
    .await;
    let created: Value = create(&sim, &client, &lake(), None).await.json().await.unwrap();
    let id = created["id"].as_str().unwrap();
    let timings = || async {
        let all: Value = client
            .get(format!("{}/__sim/tasks", sim.base_url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        all
    };
    sim.advance(Duration::from_secs(30));
    assert_eq!(get_task(&sim, &client, id).await["status"], "processing");
    let early = timings().await;
    assert_eq!(early["time_scale"], 0.0, "a manual clock");
    assert_eq!(early["tasks"][0]["polls"], 1);
    assert_eq!(
        early["tasks"][0]["noticed_after_seconds"],
        Value::Null,
        "not finished yet"
    );

    // Finished at 40 s; first seen finished at 45 s; later reads do not move that.
    sim.advance(Duration::from_secs(15));
    assert_eq!(get_task(&sim, &client, id).await["status"], "completed");
    sim.advance(Duration::from_secs(10));
    get_task(&sim, &client, id).await;
    let late = timings().await;
    let task = &late["tasks"][0];
    assert_eq!(task["id"], id);
    assert_eq!(task["polls"], 3);
    assert_eq!(task["generation_seconds"], 40.0);
    assert_eq!(task["noticed_after_seconds"], 5.0);
    assert!(task["created_unix_ms"].as_u64().unwrap() > 1_700_000_000_000);
}

/// prepare → PUT (no key) → confirm, as contract §14 has it; returns the confirmed file's view.
async fn upload(sim: &SimHandle, client: &Client, bytes: &[u8], auth_on_put: bool) -> Value {
    use base64::Engine;
    use md5::Digest as _;
    let checksum = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(bytes));
    let prepared: Value = client
        .post(format!("{}/api/v1/files/prepare", sim.base_url()))
        .bearer_auth(sim.api_key())
        .json(
            &json!({"filename": "a.png", "byte_size": bytes.len(), "checksum": checksum, "content_type": "image/png"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut put = client
        .put(prepared["upload_url"].as_str().unwrap())
        .body(bytes.to_vec());
    for (name, value) in prepared["headers"].as_object().unwrap() {
        put = put.header(name, value.as_str().unwrap());
    }
    if auth_on_put {
        put = put.bearer_auth(sim.api_key());
    }
    assert_eq!(put.send().await.unwrap().status(), StatusCode::OK);
    client
        .post(format!("{}/api/v1/files/confirm", sim.base_url()))
        .bearer_auth(sim.api_key())
        .json(&json!({"signed_id": prepared["signed_id"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn uploads_are_checked_counted_and_expire() {
    let (sim, client) = start(|c| c.separate_file_origin = true).await;
    let bytes = b"\x89PNG\r\n\x1a\n a small picture".to_vec();
    let file = upload(&sim, &client, &bytes, false).await;
    let url = file["url"].as_str().expect("a confirmed file has a URL").to_string();
    assert!(url.starts_with(sim.file_base_url()), "{url}");
    assert_eq!(file["size_bytes"], bytes.len());
    assert!(file["expires_at"].is_string());
    // A create naming it goes through.
    let i2v = json!({"model": "kling-v2.6", "prompt": "waves", "first_frame_image_url": url, "duration_seconds": 5});
    let created = client
        .post(format!("{}/api/v1/kling/image_to_video", sim.base_url()))
        .bearer_auth(sim.api_key())
        .json(&i2v)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::OK, "{:?}", created.text().await);
    // A PUT with the wrong bytes is refused; one carrying the key is counted.
    use base64::Engine;
    let prepared: Value = client
        .post(format!("{}/api/v1/files/prepare", sim.base_url()))
        .bearer_auth(sim.api_key())
        .json(&json!({"filename": "b.png", "byte_size": 3, "checksum": base64::engine::general_purpose::STANDARD.encode([0u8; 16])}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let wrong = client
        .put(prepared["upload_url"].as_str().unwrap())
        .header("Content-MD5", prepared["headers"]["Content-MD5"].as_str().unwrap())
        .body(vec![1u8, 2, 3])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    upload(&sim, &client, &bytes, true).await;
    let stats = sim.stats();
    assert_eq!(stats.counters.uploads_confirmed, 2);
    assert_eq!(stats.counters.upload_requests_with_authorization, 1);
    // With a TTL of zero, a confirmed upload is expired at once: a new create naming it is 422.
    sim.set_faults(Faults {
        upload_ttl_seconds: 0,
        ..Faults::default()
    });
    let stale = upload(&sim, &client, &bytes, false).await;
    let i2v =
        json!({"model": "kling-v2.6", "prompt": "waves", "first_frame_image_url": stale["url"], "duration_seconds": 5});
    let refused = client
        .post(format!("{}/api/v1/kling/image_to_video", sim.base_url()))
        .bearer_auth(sim.api_key())
        .json(&i2v)
        .send()
        .await
        .unwrap();
    let (status, body) = error_of(refused).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(sim.stats().counters.creates_with_unusable_upload, 1);
    assert_eq!(
        sim.stats().counters.tasks_created,
        1,
        "nothing made for the stale upload"
    );
}

async fn post(sim: &SimHandle, client: &Client, action: &str, body: &Value) -> Response {
    client
        .post(format!("{}/api/v1/kling/{action}", sim.base_url()))
        .bearer_auth(sim.api_key())
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn continuations_need_a_completed_source_of_a_model_they_continue() {
    let (sim, client) = start(|_| {}).await;
    let turbo = json!({"model": "kling-v2.5-turbo-text-to-video-pro", "prompt": "a lake", "duration_seconds": 5});
    let source: Value = post(&sim, &client, "text_to_video", &turbo).await.json().await.unwrap();
    let source_id = source["id"].as_str().unwrap().to_string();
    // Not completed yet: 409 source_task_not_ready, nothing created or billed.
    let extend = json!({"source_task_id": source_id, "prompt": "and on"});
    let (status, body) = error_of(post(&sim, &client, "extend_video", &extend).await).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "source_task_not_ready");
    sim.advance(Duration::from_secs(121));
    let extension: Value = post(&sim, &client, "extend_video", &extend).await.json().await.unwrap();
    let extension_id = extension["id"].as_str().expect("an extension is made").to_string();
    // An extension extends again, once it completed.
    sim.advance(Duration::from_secs(121));
    let again = json!({"source_task_id": extension_id});
    let longer = post(&sim, &client, "extend_video", &again).await;
    assert_eq!(longer.status(), StatusCode::OK, "{:?}", longer.text().await);
    // A kling-3.0 task is not extendable; an unknown id is not usable.
    let other: Value = create(&sim, &client, &lake(), None).await.json().await.unwrap();
    sim.advance(Duration::from_secs(121));
    let (status, body) =
        error_of(post(&sim, &client, "extend_video", &json!({"source_task_id": other["id"]})).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "continuation_not_supported");
    let (status, body) = error_of(
        post(
            &sim,
            &client,
            "extend_video",
            &json!({"source_task_id": "no-such-task"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "source_task_unusable");
    let stats = sim.stats();
    assert_eq!(stats.counters.continuations_not_ready, 1);
    assert_eq!(stats.counters.continuations_unusable, 2);
    assert_eq!(
        stats.counters.tasks_created, 4,
        "the source, two extensions, the kling-3.0 task"
    );
}
