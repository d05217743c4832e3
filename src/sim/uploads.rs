//! The files API (contract §14): `POST /api/v1/files/prepare` → `PUT upload_url` (raw bytes,
//! exactly the returned headers, no API key) → `POST /api/v1/files/confirm`, and the one-step
//! `POST /api/v1/files` with a base64 source. The upload URL lives on the file origin, as a
//! storage host would; its requests are counted, with and without `Authorization`. Confirmed
//! files get a URL that expires (`upload_ttl_seconds`); a create naming an expired or unknown
//! upload is answered 422.

use super::shared::{Shared, authorize, error_response};
use super::upload_store::{Prepared, file_view};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures::StreamExt;
use md5::{Digest, Md5};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Duration;

/// The largest file the simulator takes (413 above it).
pub(super) const MAX_UPLOAD_BYTES: u64 = 2 << 30;

fn invalid(message: impl Into<String>) -> Response {
    error_response(StatusCode::UNPROCESSABLE_ENTITY, "validation_error", message)
}

fn base(shared: &Shared) -> String {
    shared.file_base.get().cloned().unwrap_or_default()
}

/// The first media field of a create body that names an upload of ours that is unknown or has
/// expired.
pub(super) fn unusable_upload(shared: &Shared, body: &Map<String, Value>) -> Option<String> {
    let base = base(shared);
    let state = shared.lock();
    for (name, value) in body {
        let urls: Vec<&str> = match value {
            Value::String(s) => vec![s.as_str()],
            Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
            _ => continue,
        };
        for url in urls {
            if url.starts_with(crate::inputs::PLACEHOLDER) {
                return Some(format!(
                    "{name} must be an http(s) URL, not a local file's placeholder: {url}"
                ));
            }
            if state.uploads.usable(&base, url) == Some(false) {
                return Some(format!(
                    "{name} names an upload that has expired or does not exist: {url}"
                ));
            }
        }
    }
    None
}

/// `POST /api/v1/files/prepare {filename, byte_size, checksum[, content_type]}`.
pub(super) async fn prepare(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Err(r) = authorize(&shared, &headers) {
        return r;
    }
    let filename = body["filename"].as_str().unwrap_or_default().to_string();
    let checksum = body["checksum"].as_str().unwrap_or_default().to_string();
    let Some(byte_size) = body["byte_size"].as_u64().filter(|n| *n > 0) else {
        return invalid("byte_size must be a positive integer");
    };
    if filename.is_empty() {
        return invalid("filename is required");
    }
    if STANDARD.decode(&checksum).map(|d| d.len()) != Ok(16) {
        return invalid("checksum must be the base64 of the file's MD5 (24 characters)");
    }
    if byte_size > MAX_UPLOAD_BYTES {
        return error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            "file_too_large",
            format!("Files are limited to {MAX_UPLOAD_BYTES} bytes"),
        );
    }
    let content_type = body["content_type"]
        .as_str()
        .unwrap_or("application/octet-stream")
        .to_string();
    let id = {
        let mut state = shared.lock();
        state.uploads.next += 1;
        let id = format!("sid{:08}", state.uploads.next);
        state.uploads.prepared.insert(
            id.clone(),
            Prepared {
                filename,
                byte_size,
                checksum: checksum.clone(),
                content_type: content_type.clone(),
                delivered: false,
            },
        );
        state.counters.uploads_prepared += 1;
        id
    };
    Json(json!({
        "signed_id": id,
        "upload_url": format!("{}/uploads/{id}", base(&shared)),
        "headers": {"Content-MD5": checksum, "Content-Type": content_type},
    }))
    .into_response()
}

/// `PUT /uploads/{signed_id}`: the bytes, checked against the prepared size and MD5 as they
/// stream in (nothing is kept).
pub(super) async fn put(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (expected, failure, slow, unchecked) = {
        let mut state = shared.lock();
        state.counters.upload_requests += 1;
        if headers.contains_key(header::AUTHORIZATION) {
            state.counters.upload_requests_with_authorization += 1;
        }
        let failure = state.upload_fault();
        let slow = state.faults.upload_slow_ms;
        let unchecked = state.faults.upload_unchecked;
        (state.uploads.prepared.get(&id).cloned(), failure, slow, unchecked)
    };
    let Some(expected) = expected else {
        return error_response(StatusCode::NOT_FOUND, "not_found", "No such upload");
    };
    if let Some(status) = failure {
        return error_response(status, "upload_failed", "The storage host failed");
    }
    if !unchecked && headers.get("content-md5").and_then(|v| v.to_str().ok()) != Some(expected.checksum.as_str()) {
        return error_response(
            StatusCode::BAD_REQUEST,
            "bad_digest",
            "Content-MD5 must be the checksum given to prepare",
        );
    }
    let mut md5 = Md5::new();
    let mut size = 0u64;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            return error_response(StatusCode::BAD_REQUEST, "incomplete_body", "The upload was cut");
        };
        size += chunk.len() as u64;
        if size > expected.byte_size {
            return error_response(StatusCode::BAD_REQUEST, "size_mismatch", "More bytes than prepared");
        }
        md5.update(&chunk);
        if slow > 0 {
            tokio::time::sleep(Duration::from_millis(slow)).await;
        }
    }
    if size != expected.byte_size {
        return error_response(StatusCode::BAD_REQUEST, "size_mismatch", "Fewer bytes than prepared");
    }
    if !unchecked && STANDARD.encode(md5.finalize()) != expected.checksum {
        return error_response(
            StatusCode::BAD_REQUEST,
            "bad_digest",
            "The bytes do not match Content-MD5",
        );
    }
    let mut state = shared.lock();
    if let Some(p) = state.uploads.prepared.get_mut(&id) {
        p.delivered = true;
    }
    state.counters.uploads_delivered += 1;
    StatusCode::OK.into_response()
}

/// `POST /api/v1/files/confirm {signed_id}`.
pub(super) async fn confirm(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Err(r) = authorize(&shared, &headers) {
        return r;
    }
    let id = body["signed_id"].as_str().unwrap_or_default();
    let base = base(&shared);
    let mut state = shared.lock();
    let ttl = state.faults.upload_ttl_seconds;
    let Some(prepared) = state.uploads.prepared.get(id).cloned() else {
        return invalid("No such signed_id");
    };
    if !prepared.delivered {
        return invalid("The file has not been uploaded");
    }
    state.uploads.prepared.remove(id);
    let (token, file) = state
        .uploads
        .confirm(prepared.filename, prepared.byte_size, prepared.content_type, ttl);
    state.counters.uploads_confirmed += 1;
    Json(file_view(&base, &token, &file, state.faults.clock_offset_seconds)).into_response()
}

/// `POST /api/v1/files {source: {type: "base64", data} | {type: "url", url}, file_name}`.
pub(super) async fn direct(State(shared): State<Arc<Shared>>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    if let Err(r) = authorize(&shared, &headers) {
        return r;
    }
    let file_name = body["file_name"].as_str().unwrap_or("file").to_string();
    let size = match body["source"]["type"].as_str() {
        Some("base64") => match STANDARD.decode(body["source"]["data"].as_str().unwrap_or_default()) {
            Ok(bytes) if !bytes.is_empty() => bytes.len() as u64,
            _ => return invalid("source.data must be non-empty base64"),
        },
        Some("url") if body["source"]["url"].as_str().is_some_and(crate::kling::is_http_url) => 0,
        _ => return invalid("source must be {type: base64, data} or {type: url, url}"),
    };
    let base = base(&shared);
    let mut state = shared.lock();
    let ttl = state.faults.upload_ttl_seconds;
    let (token, file) = state
        .uploads
        .confirm(file_name, size, "application/octet-stream".into(), ttl);
    state.counters.uploads_confirmed += 1;
    Json(file_view(&base, &token, &file, state.faults.clock_offset_seconds)).into_response()
}

/// `GET /uploaded/{token}`: a confirmed file's URL answers while it is valid (no body kept).
pub(super) async fn uploaded(State(shared): State<Arc<Shared>>, Path(token): Path<String>) -> Response {
    let base = base(&shared);
    let usable = shared.lock().uploads.usable(&base, &format!("{base}/uploaded/{token}"));
    match usable {
        Some(true) => StatusCode::OK.into_response(),
        _ => error_response(StatusCode::FORBIDDEN, "access_denied", "Request has expired"),
    }
}
