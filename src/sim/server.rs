//! Listening, routing and the in-process handle. One accept loop per origin serves each
//! connection with hyper directly, so a handler can ask for its own connection to be dropped
//! without an answer (the "task created, client never hears" fault).

use super::api;
use super::clock::SimClock;
use super::config::{Faults, RetryAfterForm, SimConfig};
use super::files;
use super::shared::{ConnectionControl, Shared, error_response};
use super::state::{Admission, State as SimState};
use super::stats::Stats;
use super::uploads;
use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::{JoinHandle, JoinSet};
use tower::ServiceExt;

/// Counts every request by route and status and applies the faults that come before a handler
/// (5xx, 429) and the added latency after it. Control routes are exempt.
async fn observe(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    if path.starts_with("/__sim/") {
        return next.run(request).await;
    }
    let route = format!(
        "{} {}",
        request.method(),
        request
            .extensions()
            .get::<MatchedPath>()
            .map_or("(unmatched)", MatchedPath::as_str)
    );
    let api = path.starts_with("/api/");
    let (admission, latency) = {
        let mut state = shared.lock();
        (state.admit(api), state.latency())
    };
    let response = match admission {
        Admission::Proceed => next.run(request).await,
        Admission::ServerError(status) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let (code, message) = if status == StatusCode::SERVICE_UNAVAILABLE {
                ("service_unavailable", "No active channel available")
            } else {
                ("server_error", "Internal server error")
            };
            let echo = super::api::echoed_key(&shared, request.headers()).unwrap_or_default();
            error_response(status, code, format!("{message}{echo}"))
        }
        Admission::RateLimited { retry_after, form } => rate_limited(retry_after, form),
    };
    {
        let mut state = shared.lock();
        *state
            .counters
            .requests
            .entry(route)
            .or_default()
            .entry(response.status().as_u16().to_string())
            .or_default() += 1;
    }
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    response
}

fn rate_limited(wait: Duration, form: RetryAfterForm) -> Response {
    let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
    let value = match form {
        RetryAfterForm::Date => httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(seconds + 1)),
        _ => seconds.to_string(),
    };
    let mut response = error_response(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "Too many requests");
    if let Ok(v) = HeaderValue::from_str(&value) {
        response.headers_mut().insert("retry-after", v);
    }
    response
}

async fn stats(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(shared.stats()).into_response()
}

/// Every task's timing (simulated seconds) and the time scale that turns it into real seconds.
async fn task_timings(State(shared): State<Arc<Shared>>) -> Response {
    let tasks = shared.lock().timings();
    axum::Json(serde_json::json!({"time_scale": shared.clock.scale(), "tasks": tasks})).into_response()
}

async fn set_faults(State(shared): State<Arc<Shared>>, body: axum::body::Bytes) -> Response {
    match serde_json::from_slice::<Faults>(&body) {
        Ok(faults) => {
            shared.lock().set_faults(faults);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => error_response(StatusCode::BAD_REQUEST, "invalid_request", e.to_string()),
    }
}

async fn set_balance(State(shared): State<Arc<Shared>>, body: axum::body::Bytes) -> Response {
    match serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["cents"].as_u64())
    {
        Some(cents) => {
            shared.lock().set_balance(cents);
            StatusCode::NO_CONTENT.into_response()
        }
        None => error_response(StatusCode::BAD_REQUEST, "invalid_request", "Expected {\"cents\": N}"),
    }
}

async fn advance(State(shared): State<Arc<Shared>>, body: axum::body::Bytes) -> Response {
    match serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["seconds"].as_f64())
        .filter(|s| *s >= 0.0)
    {
        Some(seconds) => {
            shared.clock.advance(Duration::from_secs_f64(seconds));
            StatusCode::NO_CONTENT.into_response()
        }
        None => error_response(StatusCode::BAD_REQUEST, "invalid_request", "Expected {\"seconds\": N}"),
    }
}

async fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "not_found", "No such route")
}

fn api_router(shared: &Arc<Shared>, with_files: bool) -> Router {
    let mut router = Router::new()
        .route("/api/v1/kling/{action}", post(api::create))
        .route("/api/v1/kling/{action}/{id}", get(api::get_task))
        .route("/api/v1/me", get(api::me))
        .route("/api/v1/me/balance", get(api::balance))
        .route("/api/v1/price_schedules", get(api::price_schedules))
        .route("/api/v1/price_quotes", post(api::price_quote))
        .route("/api/v1/files/prepare", post(uploads::prepare))
        .route("/api/v1/files/confirm", post(uploads::confirm))
        .route("/api/v1/files", post(uploads::direct))
        .route("/__sim/stats", get(stats))
        .route("/__sim/tasks", get(task_timings))
        .route("/__sim/faults", post(set_faults))
        .route("/__sim/balance", post(set_balance))
        .route("/__sim/advance", post(advance));
    if with_files {
        router = router
            .route("/files/{name}", get(files::video))
            .route("/uploads/{id}", put(uploads::put))
            .route("/uploaded/{token}", get(uploads::uploaded));
    }
    router
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(Arc::clone(shared), observe))
        .with_state(Arc::clone(shared))
}

fn file_router(shared: &Arc<Shared>) -> Router {
    Router::new()
        .route("/files/{name}", get(files::video))
        .route("/uploads/{id}", put(uploads::put))
        .route("/uploaded/{token}", get(uploads::uploaded))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(Arc::clone(shared), observe))
        .with_state(Arc::clone(shared))
}

async fn serve(listener: TcpListener, router: Router, mut shutdown: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let router = router.clone();
                connections.spawn(async move {
                    let kill = Arc::new(Notify::new());
                    let control = ConnectionControl(Arc::clone(&kill));
                    let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
                        request.extensions_mut().insert(control.clone());
                        router.clone().oneshot(request.map(Body::new))
                    });
                    let connection = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service);
                    // Dropping the connection future closes the socket without a response.
                    tokio::select! {
                        _ = connection => {}
                        _ = kill.notified() => {}
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = shutdown.changed() => break,
        }
    }
    connections.shutdown().await;
}

/// A running simulator. Dropping it stops the servers.
#[derive(Debug)]
pub struct SimHandle {
    base_url: String,
    file_base_url: String,
    api_key: String,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    servers: Vec<JoinHandle<()>>,
}

impl SimHandle {
    /// `http://127.0.0.1:PORT`, the API origin.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The origin video URLs point at (the API origin unless files are served separately).
    pub fn file_base_url(&self) -> &str {
        &self.file_base_url
    }

    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    pub fn set_faults(&self, faults: Faults) {
        self.shared.lock().set_faults(faults);
    }

    pub fn set_balance(&self, cents: u64) {
        self.shared.lock().set_balance(cents);
    }

    /// The bytes this simulator serves for a completed task's video: what a download must end with.
    pub fn video_of(&self, task_id: &str) -> Vec<u8> {
        let len = {
            let state = self.shared.lock();
            state.task(task_id).map_or(state.video_bytes, |t| t.video_len)
        };
        let file = super::mp4::VideoFile::new(task_id, len);
        file.chunks(0, file.len()).flat_map(|c| c.to_vec()).collect()
    }

    /// Every task's timing (generation time, status reads, how late the first read that saw it
    /// finished came), in creation order.
    pub fn timings(&self) -> Vec<super::TaskTiming> {
        self.shared.lock().timings()
    }

    /// Moves a manual clock (time scale 0) forward.
    pub fn advance(&self, by: Duration) {
        self.shared.clock.advance(by);
    }

    /// Stops accepting, closes every connection and waits for the servers to end.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        for server in self.servers.drain(..) {
            let _ = server.await;
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// Starts a simulator on `127.0.0.1:0` (and a second free port for files if configured).
pub async fn start(config: SimConfig) -> std::io::Result<SimHandle> {
    start_on(config, SocketAddr::from(([127, 0, 0, 1], 0)), None).await
}

/// Starts a simulator on the given addresses (port 0 picks a free one).
pub async fn start_on(config: SimConfig, api: SocketAddr, files: Option<SocketAddr>) -> std::io::Result<SimHandle> {
    let api_listener = TcpListener::bind(api).await?;
    let base_url = format!("http://{}", api_listener.local_addr()?);
    let file_listener = if config.separate_file_origin {
        let addr = files.unwrap_or_else(|| SocketAddr::new(api.ip(), 0));
        Some(TcpListener::bind(addr).await?)
    } else {
        None
    };
    let file_base_url = match &file_listener {
        Some(l) => format!("http://{}", l.local_addr()?),
        None => base_url.clone(),
    };
    let mut secret = [0u8; 32];
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    secret.copy_from_slice(&Sha256::digest(format!("{nanos}:{}", config.seed)));
    let clock = if config.time_scale == 0.0 {
        SimClock::manual()
    } else {
        SimClock::scaled(config.time_scale)
    };
    let shared = Arc::new(Shared {
        clock,
        state: Mutex::new(SimState::new(&config)),
        secret,
        file_base: OnceLock::new(),
        download_bytes: AtomicU64::new(0),
    });
    let _ = shared.file_base.set(file_base_url.clone());
    let (shutdown, receiver) = watch::channel(false);
    let mut servers = vec![tokio::spawn(serve(
        api_listener,
        api_router(&shared, file_listener.is_none()),
        receiver.clone(),
    ))];
    if let Some(listener) = file_listener {
        servers.push(tokio::spawn(serve(listener, file_router(&shared), receiver)));
    }
    Ok(SimHandle {
        base_url,
        file_base_url,
        api_key: config.api_key,
        shared,
        shutdown,
        servers,
    })
}
