//! The review app (issue 27) through the real binary: its token and what it serves, its records
//! surviving a killed app and a second reviewer, the blind vote's rule, and `--import`. (The
//! browser drives it in tests/review; the scores are checked by hand in `review::scores`.)

use crate::common::{TWELVE_JOBS, TestEnv, read_rows, run};
use serde_json::Value;
use tokio::io::AsyncBufReadExt;

const CANARY_KEY: &str = "sk-review-canary-5150";

/// A review app on `env.out`, with `extra` flags: the process and its address (on 127.0.0.1).
async fn app(env: &TestEnv, extra: &[&str]) -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kling-batch"))
        .arg("review")
        .arg(&env.out)
        .args(extra)
        .env("RUNAPI_API_KEY", CANARY_KEY)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the app starts");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(std::time::Duration::from_secs(60), lines.next_line())
        .await
        .expect("the app prints its address within 60 s")
        .unwrap()
        .expect("an address line");
    (child, line.replace("0.0.0.0", "127.0.0.1"))
}

fn base(address: &str) -> (String, String) {
    let (origin, token) = address.split_once("/?token=").expect("an address with its token");
    (origin.to_string(), token.to_string())
}

async fn finished_run() -> TestEnv {
    let env = TestEnv::new(|_| {}, TWELVE_JOBS).await;
    let out = env.run(&[]).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    env.check_invariants(None);
    env
}

async fn state(client: &reqwest::Client, origin: &str, token: &str) -> Value {
    client
        .get(format!("{origin}/api/state?token={token}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_loopback_every_request_needs_the_token_and_only_the_runs_videos_are_served() {
    let env = finished_run().await;
    let (_child, address) = app(&env, &["--listen", "0.0.0.0:0"]).await;
    let (origin, token) = base(&address);
    let client = reqwest::Client::new();
    let status = |r: reqwest::Response| r.status().as_u16();
    // Without the token: 401 for the page and the API.
    for path in ["/", "/api/state", "/api/pair"] {
        let r = client.get(format!("{origin}{path}")).send().await.unwrap();
        assert_eq!(status(r), 401, "{path} without the token");
        let wrong = client.get(format!("{origin}{path}?token=nope")).send().await.unwrap();
        assert_eq!(status(wrong), 401, "{path} with a wrong token");
    }
    let page = client.get(&address).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let page = page.text().await.unwrap();
    let body = state(&client, &origin, &token).await;
    let text = body.to_string();
    assert!(
        !page.contains(CANARY_KEY) && !text.contains(CANARY_KEY),
        "the API key never reaches a page"
    );
    let clips = body["clips"].as_array().unwrap();
    assert_eq!(clips.len(), 12);
    let id = clips[0]["id"].as_str().unwrap().to_string();
    // A change needs the token in a header, not only in the address.
    let change = serde_json::json!({ "job": id, "rating": 5 });
    let r = client
        .post(format!("{origin}/api/review?token={token}"))
        .json(&change)
        .send()
        .await
        .unwrap();
    assert_eq!(status(r), 401, "a change with the token only in the address");
    let r = client
        .post(format!("{origin}/api/review?token={token}"))
        .header("x-review-token", &token)
        .json(&change)
        .send()
        .await
        .unwrap();
    assert_eq!(status(r), 200);
    // Videos: by clip id, with Range; nothing else.
    let video = client
        .get(format!("{origin}/v/{id}?token={token}"))
        .header("range", "bytes=0-99")
        .send()
        .await
        .unwrap();
    assert_eq!(video.status().as_u16(), 206);
    let row = read_rows(&env.out.join("results.csv"))
        .into_iter()
        .find(|r| r["job_id"] == id)
        .unwrap();
    let on_disk = std::fs::read(env.out.join(&row["video_path"])).unwrap();
    assert_eq!(video.bytes().await.unwrap().as_ref(), &on_disk[..100]);
    for path in [
        "/v/nope".to_string(),
        "/v/..%2Fjournal.jsonl".to_string(),
        "/v/..%2F..%2F..%2Fetc%2Fpasswd".to_string(),
        "/journal.jsonl".to_string(),
        "/videos/".to_string() + &row["video_path"].replace("videos/", ""),
    ] {
        let r = client
            .get(format!("{origin}{path}?token={token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(status(r), 404, "{path}");
    }
    // A video swapped for a link leading out of the run folder is not served either.
    let outside = env.dir.path().join("secret.txt");
    std::fs::write(&outside, "not a video").unwrap();
    let target = env.out.join(&row["video_path"]);
    std::fs::remove_file(&target).unwrap();
    std::os::unix::fs::symlink(&outside, &target).unwrap();
    let r = client
        .get(format!("{origin}/v/{id}?token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(status(r), 404, "a link out of the folder");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reviews_outlive_a_killed_app_and_two_reviewers_see_each_other() {
    let env = finished_run().await;
    let (mut ann, address) = app(&env, &["--reviewer", "ann"]).await;
    let (origin, token) = base(&address);
    let (_bob, bob_address) = app(&env, &["--reviewer", "bob"]).await;
    let (bob_origin, bob_token) = base(&bob_address);
    let client = reqwest::Client::new();
    // On loopback, a request addressed to another name (a page that rebound its name to
    // 127.0.0.1) is refused, reads included.
    let rebound = client
        .get(format!("{origin}/api/state"))
        .header("host", "rebound.example:80")
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status().as_u16(), 401, "a rebound name");
    let clips = state(&client, &origin, &token).await["clips"]
        .as_array()
        .unwrap()
        .clone();
    let (a, b) = (clips[0]["id"].as_str().unwrap(), clips[1]["id"].as_str().unwrap());
    let post = |origin: String, token: String, path: &'static str, body: Value| {
        let client = client.clone();
        async move {
            client
                .post(format!("{origin}{path}"))
                .header("x-review-token", token)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let r = post(
        origin.clone(),
        token.clone(),
        "/api/review",
        serde_json::json!({"job": a, "rating": 4, "picked": true}),
    )
    .await;
    assert_eq!(r.status().as_u16(), 200);
    let r = post(
        bob_origin.clone(),
        bob_token.clone(),
        "/api/review",
        serde_json::json!({"job": a, "rating": 2, "note": "too dark"}),
    )
    .await;
    assert_eq!(r.status().as_u16(), 200);
    // A vote before both clips played is refused, and nothing is recorded.
    let early = serde_json::json!({"left": a, "right": b, "winner": "left", "played": [true, false]});
    let r = post(origin.clone(), token.clone(), "/api/vote", early).await;
    assert_eq!(r.status().as_u16(), 409);
    let vote = serde_json::json!({"left": a, "right": b, "winner": "left", "played": [true, true]});
    let r = post(origin.clone(), token.clone(), "/api/vote", vote).await;
    assert_eq!(r.status().as_u16(), 200);
    let shown: Value = r.json().await.unwrap();
    assert!(
        shown["left"]["aspect_ratio"].is_string(),
        "the parameters, after the vote: {shown}"
    );
    // Ann's app is killed outright; a new one finds everything, Bob's included.
    ann.start_kill().unwrap();
    ann.wait().await.unwrap();
    let (_ann, address) = app(&env, &["--reviewer", "ann"]).await;
    let (origin, token) = base(&address);
    let now = state(&client, &origin, &token).await;
    let clip = now["clips"].as_array().unwrap().iter().find(|c| c["id"] == a).unwrap();
    assert_eq!(clip["mine"]["rating"], 4);
    assert_eq!(clip["mean"], 3.0, "ann's 4 and bob's 2");
    assert_eq!(clip["picked"], true);
    assert_eq!(clip["wins"], 1);
    assert_eq!(now["votes"], 1);
    let bobs = state(&client, &bob_origin, &bob_token).await;
    let clip = bobs["clips"].as_array().unwrap().iter().find(|c| c["id"] == a).unwrap();
    assert_eq!(clip["mine"]["note"], "too dark");
    assert_eq!(clip["mine"]["rating"], 2);
    // The run itself is not disturbed: a rerun on the folder resumes and spends nothing.
    let billed = env.sim.stats().billed_usd;
    let rerun = env.run(&[]).await;
    assert_eq!(rerun.code, Some(0), "{}", rerun.stderr);
    assert_eq!(env.sim.stats().billed_usd, billed);
    // Its results.csv carries the reviews.
    let rows = read_rows(&env.out.join("results.csv"));
    let row = rows.iter().find(|r| r["job_id"] == a).unwrap();
    assert_eq!(
        (row["rating"].as_str(), row["picked"].as_str(), row["wins"].as_str()),
        ("3.00", "true", "1")
    );
    env.check_invariants(None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_with_a_bad_row_imports_nothing_and_a_good_one_reaches_results_and_review_csv() {
    let env = finished_run().await;
    let ids: Vec<String> = read_rows(&env.out.join("results.csv"))
        .into_iter()
        .map(|r| r["job_id"].clone())
        .collect();
    let file = env.dir.path().join("ratings.csv");
    let out = env.out.to_str().unwrap();
    std::fs::write(
        &file,
        format!(
            "job_id,rating,picked,reviewer\n{},5,true,cy\n{},7,,cy\n",
            ids[0], ids[1]
        ),
    )
    .unwrap();
    let bad = run(&["review", out, "--import", file.to_str().unwrap()]);
    assert_eq!(bad.code, 4, "{}", bad.stderr);
    assert!(
        bad.stderr
            .contains("ratings.csv:3: rating `7` is not a whole number from 1 to 5")
            && bad.stderr.contains("nothing was imported"),
        "{}",
        bad.stderr
    );
    assert!(
        !env.out.join("reviews.jsonl").exists() || std::fs::read(env.out.join("reviews.jsonl")).unwrap().is_empty()
    );
    std::fs::write(
        &file,
        format!(
            "job_id,rating,picked,reviewer,note\n{},5,true,cy,best\n{},2,,,\n",
            ids[0], ids[1]
        ),
    )
    .unwrap();
    let good = run(&["review", out, "--import", file.to_str().unwrap(), "--reviewer", "dee"]);
    assert_eq!(good.code, 0, "{}", good.stderr);
    assert!(good.stdout.contains("imported 2 rating(s)"), "{}", good.stdout);
    let report = run(&["report", out]);
    assert_eq!(report.code, 0, "{}", report.stderr);
    let rows = read_rows(&env.out.join("results.csv"));
    let row = |id: &str| rows.iter().find(|r| r["job_id"] == id).unwrap().clone();
    assert_eq!(
        (row(&ids[0])["rating"].as_str(), row(&ids[0])["picked"].as_str()),
        ("5.00", "true")
    );
    assert_eq!(row(&ids[1])["rating"], "2.00");
    assert_eq!(row(&ids[2])["rating"], "");
    assert!(env.out.join("review.csv").exists());
    let gallery = std::fs::read_to_string(env.out.join("report.html")).unwrap();
    assert!(
        gallery.contains("♥ picked · rated 5.0"),
        "the gallery shows the reviews"
    );
    // An unknown job is refused by name.
    std::fs::write(&file, "job_id,rating\nno-such-job,3\n").unwrap();
    let unknown = run(&["review", out, "--import", file.to_str().unwrap()]);
    assert_eq!(unknown.code, 4);
    assert!(
        unknown
            .stderr
            .contains("ratings.csv:2: `no-such-job` is not a job of this run"),
        "{}",
        unknown.stderr
    );
    env.check_invariants(None);
}

/// Four boats, and a step that extends only the ones rated 4 or more.
const ONLY_RATED: &str = r#"
defaults: { model: kling-v2.5-turbo-text-to-video-pro, duration_seconds: 5 }
prompts:
  - id: base
    prompt: "a paper boat on a {place}"
    vars: { place: [street, canal, river, lake] }
  - { id: longer, needs: base, endpoint: extend_video, prompt: "it reaches a waterfall", only: "rating >= 4" }
"#;

fn import(env: &TestEnv, rows: &[(&str, u8)]) {
    let file = env.dir.path().join("ratings.csv");
    let mut text = "job_id,rating\n".to_string();
    for (id, rating) in rows {
        text.push_str(&format!("{id},{rating}\n"));
    }
    std::fs::write(&file, text).unwrap();
    let out = run(&["review", env.out.to_str().unwrap(), "--import", file.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

/// `only: "rating >= 4"`: exactly the parents rated so get children; `plan` names them; a rerun
/// after more ratings creates only the new children, and a child begun is kept whatever its
/// parent's rating becomes. Nothing is billed twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_with_only_extends_exactly_the_rated_parents_and_later_only_the_new_ones() {
    let env = TestEnv::new(|_| {}, ONLY_RATED).await;
    let first = env.run(&[]).await;
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    assert!(
        first
            .stderr
            .contains("step `longer` (only: rating >= 4): 0 parent(s) chosen; 4 not chosen"),
        "{}",
        first.stderr
    );
    assert_eq!(
        env.sim.stats().counters.tasks_created,
        4,
        "the four boats, no extension"
    );
    let bases: Vec<String> = read_rows(&env.out.join("results.csv"))
        .into_iter()
        .map(|r| r["job_id"].clone())
        .collect();
    assert_eq!(bases.len(), 4);
    import(&env, &[(&bases[0], 5), (&bases[1], 4), (&bases[2], 2)]);
    // `plan` with the folder names the chosen parents and why.
    let manifest = env.manifest.to_str().unwrap();
    let planned = run(&["plan", manifest, "--out", env.out.to_str().unwrap(), "--json"]);
    assert_eq!(planned.code, 0, "{}", planned.stderr);
    assert!(
        planned.stderr.contains(&format!("{} (rated 5.0)", bases[0]))
            && planned.stderr.contains(&format!("{} (rated 4.0)", bases[1])),
        "{}",
        planned.stderr
    );
    assert!(
        planned.stderr.contains("2 parent(s) chosen") && planned.stderr.contains("2 not chosen"),
        "{}",
        planned.stderr
    );
    let plan: Value = serde_json::from_str(&planned.stdout).unwrap();
    assert_eq!(plan["jobs"].as_array().unwrap().len(), 6);
    // Without the folder, no parent is chosen yet, and the note says how to see a run's choice.
    let bare = run(&["plan", manifest]);
    assert!(bare.stderr.contains("give --out DIR"), "{}", bare.stderr);
    let second = env.run(&[]).await;
    assert_eq!(second.code, Some(0), "{}", second.stderr);
    assert_eq!(env.sim.stats().counters.tasks_created, 6, "two extensions");
    let parents = |env: &TestEnv| -> Vec<String> {
        let mut p: Vec<String> = read_rows(&env.out.join("results.csv"))
            .into_iter()
            .filter(|r| !r["parent_job_id"].is_empty())
            .map(|r| r["parent_job_id"].clone())
            .collect();
        p.sort();
        p
    };
    let mut expected = vec![bases[0].clone(), bases[1].clone()];
    expected.sort();
    assert_eq!(parents(&env), expected);
    // One more rated 4, and the first one's rating taken down: only the new child is made, the
    // begun one stays.
    import(&env, &[(&bases[3], 4), (&bases[0], 1)]);
    let third = env.run(&[]).await;
    assert_eq!(third.code, Some(0), "{}", third.stderr);
    assert_eq!(env.sim.stats().counters.tasks_created, 7, "one more extension");
    assert!(
        third.stderr.contains("1 child(ren) begun before kept"),
        "{}",
        third.stderr
    );
    expected.push(bases[3].clone());
    expected.sort();
    assert_eq!(parents(&env), expected);
    env.check_invariants(None);
}
