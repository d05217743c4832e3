//! A database link that goes silent instead of failing (issue 36): a real loopback proxy between a
//! worker and a real PostgreSQL that keeps every connection open but stops forwarding — both ways,
//! or only the database's answers. TCP sees nothing wrong (the proxy's kernel acknowledges every
//! byte); only a deadline on the wait can. The worker must stop, resumable, and a later worker
//! finish the sweep with nothing paid twice.

use crate::common::TestEnv;
use crate::pg::Postgres;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// 12 jobs of 5 s at 720p on kling-3.0: $0.70 each.
const TWELVE: &str = r#"
defaults: { model: kling-3.0, duration_seconds: 5 }
prompts: ["a lake", "a river", "a sea", "a forest", "a desert", "a city"]
matrix: { aspect_ratio: ["16:9", "9:16"] }
"#;

/// A TCP proxy on 127.0.0.1 that forwards to `target` until told to fall silent.
struct Proxy {
    port: u16,
    /// Client → database bytes are forwarded.
    ask: Arc<AtomicBool>,
    /// Database → client bytes are forwarded.
    answer: Arc<AtomicBool>,
}

impl Proxy {
    async fn start(target: u16) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let ask = Arc::new(AtomicBool::new(true));
        let answer = Arc::new(AtomicBool::new(true));
        let (a, b) = (Arc::clone(&ask), Arc::clone(&answer));
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(pump(client_read, server_write, Arc::clone(&a)));
                tokio::spawn(pump(server_read, client_write, Arc::clone(&b)));
            }
        });
        Proxy { port, ask, answer }
    }

    fn silence(&self, ask: bool, answer: bool) {
        self.ask.store(!ask, Ordering::SeqCst);
        self.answer.store(!answer, Ordering::SeqCst);
    }
}

/// Copies `from` to `to` while `on`; otherwise reads and drops (the link looks alive to TCP).
async fn pump(mut from: tokio::net::tcp::OwnedReadHalf, mut to: tokio::net::tcp::OwnedWriteHalf, on: Arc<AtomicBool>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) if on.load(Ordering::SeqCst) => {
                if to.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
            Ok(_) => {}
        }
    }
}

async fn silent_link_stops_the_worker(name: &str, ask: bool, answer: bool) {
    let pg = Postgres::start();
    let direct = pg.database(name);
    let proxy = Proxy::start(pg.port()).await;
    let through = direct.replace(&format!(":{}/", pg.port()), &format!(":{}/", proxy.port));
    assert_ne!(through, direct);
    let env = TestEnv::new(|c| c.time_scale = 20.0, TWELVE).await;
    let mut worker = env
        .command(&[
            "--state",
            &through,
            "--lease",
            "2s",
            "--state-outage",
            "3s",
            "--concurrency",
            "2",
            "--max-spend",
            "none",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    crate::common::wait_until(Duration::from_secs(120), "a job finished", || {
        pg.try_sql(name, "select count(*) from kb_jobs where state = 'finished'")
            .ok()
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|n| n >= 1)
    })
    .await;
    proxy.silence(ask, answer);
    let created_at_silence = env.sim.stats().counters.tasks_created;
    // The worker stops on its own: a deadline, not this test's, ends its waits.
    let ended = tokio::time::timeout(Duration::from_secs(60), worker.wait()).await;
    if ended.is_err() {
        let _ = worker.kill().await;
    }
    let mut stderr = String::new();
    worker.stderr.take().unwrap().read_to_string(&mut stderr).await.unwrap();
    let Ok(status) = ended else {
        panic!("the worker was still waiting on the silent database after 60 s:\n{stderr}");
    };
    let code = status.unwrap().code();
    assert_ne!(code, Some(0), "it cannot have finished without its database: {stderr}");
    assert!(
        stderr.contains("state database") && stderr.contains("kling-batch run"),
        "it says why and how to resume: {stderr}"
    );
    // A create leaves only once its intent is committed: after the silence, at most those whose
    // commit was answered just before it (one per slot).
    let created = env.sim.stats().counters.tasks_created;
    assert!(
        created <= created_at_silence + 2,
        "{} created after the silence began",
        created - created_at_silence
    );
    // The link back, a final worker finishes the sweep: every job once, the spend the bill.
    proxy.silence(false, false);
    let out = env
        .run(&["--state", &direct, "--lease", "2s", "--max-spend", "none"])
        .await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    env.check_invariants(None);
    let rows = env.results();
    assert!(
        rows.iter().all(|r| r["status"] == "completed") && rows.len() == 12,
        "{rows:?}"
    );
    let stats = env.sim.stats();
    for (job, n) in &stats.counters.creates_per_client_request_id {
        assert_eq!(*n, 1, "{job} made {n} tasks");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_link_silent_both_ways_stops_the_worker_resumably() {
    silent_link_stops_the_worker("silent_both", true, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_whose_answers_stop_arriving_stops_the_worker_resumably() {
    silent_link_stops_the_worker("silent_answers", false, true).await;
}
