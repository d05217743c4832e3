//! What every handler of the simulator shares — the clock, the state behind one mutex (never held
//! across an await), the URL-signing secret — and the small helpers they all use: the contract's
//! error body, signed video URLs, and a handle to drop the connection a request came on.

use super::clock::SimClock;
use super::state::State as SimState;
use super::stats::Stats;
use crate::util::hex::hex;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::Notify;

/// What every handler shares. The mutex is never held across an await.
#[derive(Debug)]
pub(super) struct Shared {
    pub clock: SimClock,
    pub(super) state: Mutex<SimState>,
    pub(super) secret: [u8; 32],
    pub(super) file_base: OnceLock<String>,
    pub download_bytes: AtomicU64,
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn stats(&self) -> Stats {
        let now = self.clock.now();
        let mut state = self.lock();
        state.settle_due(now);
        Stats {
            counters: state.counters.clone(),
            download_bytes: self.download_bytes.load(Ordering::Relaxed),
            billed_micro_cents: state.counters.billed.micro_cents(),
            billed_usd: state.counters.billed.usd(),
            balance_cents: state.balance().cents(),
            reserved_cents: state.reserved().cents(),
            live_uploads: state.uploads.live(),
        }
    }
}

/// Lets a handler close the connection it arrived on without answering.
#[derive(Debug, Clone)]
pub(super) struct ConnectionControl(pub(super) Arc<Notify>);

impl ConnectionControl {
    pub(super) fn drop_now(&self) {
        self.0.notify_one();
    }
}

static REQUEST_IDS: AtomicU64 = AtomicU64::new(1);

/// The contract's error body, `{"error": {"code", "message"}}`, with an `X-Request-ID`.
pub(super) fn error_response(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = json!({"error": {"code": code, "message": message.into()}});
    let mut response = (status, axum::Json(body)).into_response();
    let id = format!("req_sim_{}", REQUEST_IDS.fetch_add(1, Ordering::Relaxed));
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

pub(super) fn sign(shared: &Shared, task_id: &str, expires: u64) -> String {
    let mut hasher = Sha256::new();
    hasher.update(shared.secret);
    hasher.update(task_id.as_bytes());
    hasher.update(b":");
    hasher.update(expires.to_string().as_bytes());
    hex(&hasher.finalize()[..16])
}

/// A fresh signed URL for a completed task's video, valid for the configured time.
pub(super) fn signed_url(shared: &Shared, task_id: &str) -> String {
    let ttl = shared.lock().faults.url_ttl_seconds;
    let expires = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) + ttl;
    let base = shared.file_base.get().map_or("", String::as_str);
    format!(
        "{base}/files/{task_id}.mp4?expires={expires}&sig={}",
        sign(shared, task_id, expires)
    )
}

/// Checks `Authorization: Bearer <key>` against the one key the simulator accepts.
pub(super) fn authorize(shared: &Shared, headers: &HeaderMap) -> Result<(), Response> {
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let expected = shared.lock().api_key.clone();
    match given {
        Some(key) if key == expected => Ok(()),
        Some(key) => {
            let echo = shared.lock().faults.echo_key;
            let message = if echo {
                format!("Invalid API key: {key}")
            } else {
                "Invalid API key".to_string()
            };
            Err(error_response(StatusCode::UNAUTHORIZED, "unauthorized", message))
        }
        None => Err(error_response(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "API key is required: send Authorization: Bearer <key>",
        )),
    }
}
