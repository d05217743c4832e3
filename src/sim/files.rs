//! The video route: signed, expiring URLs; `Range` (206, 416); and the download faults
//! (truncation, servers that ignore `Range`). Bodies are streamed, never held in memory.

use super::mp4::VideoFile;
use super::shared::{Shared, error_response, sign};
use super::state::Status;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Deserialize)]
pub(super) struct Signature {
    expires: Option<u64>,
    sig: Option<String>,
}

pub(super) use crate::util::range::parse_range;

pub(super) async fn video(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    Query(signature): Query<Signature>,
    headers: HeaderMap,
) -> Response {
    {
        let mut state = shared.lock();
        state.counters.file_requests += 1;
        if headers.contains_key(header::AUTHORIZATION) {
            state.counters.file_requests_with_authorization += 1;
        }
    }
    let Some(id) = name.strip_suffix(".mp4") else {
        return error_response(StatusCode::NOT_FOUND, "not_found", "No such file");
    };
    let (Some(expires), Some(sig)) = (signature.expires, signature.sig) else {
        return error_response(StatusCode::FORBIDDEN, "access_denied", "The URL is not signed");
    };
    if sig != sign(&shared, id, expires) {
        return error_response(
            StatusCode::FORBIDDEN,
            "access_denied",
            "The URL signature does not match",
        );
    }
    let now_unix = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    if now_unix >= expires {
        return error_response(StatusCode::FORBIDDEN, "access_denied", "Request has expired");
    }
    let now = shared.clock.now();
    let (video_bytes, ignore_range, truncate, hostile) = {
        let mut state = shared.lock();
        let Some(video_bytes) = state
            .task(id)
            .filter(|t| t.status(now) == Status::Completed)
            .map(|t| t.video_len)
        else {
            return error_response(StatusCode::NOT_FOUND, "not_found", "No such file");
        };
        let faults = state.faults.clone();
        let truncate = state.draw(faults.truncate_download_rate);
        let hostile = Hostile {
            misaligned: state.draw(faults.misaligned_range_rate),
            no_length: state.draw(faults.no_length_rate),
            trickle: state
                .draw(faults.trickle_rate)
                .then_some(faults.trickle_bytes_per_second.max(1)),
        };
        (video_bytes, faults.ignore_range, truncate, hostile)
    };
    let file = VideoFile::new(id, video_bytes);
    let len = file.len();
    let range = if ignore_range {
        Ok(None)
    } else {
        parse_range(headers.get(header::RANGE).and_then(|v| v.to_str().ok()), len)
    };
    if hostile.no_length {
        return without_length(&shared, &file);
    }
    let (status, start, end) = match range {
        Ok(None) => (StatusCode::OK, 0, len),
        Ok(Some((s, e))) if s > 0 && hostile.misaligned => {
            // A 206 that starts before the offset asked for, saying so in Content-Range.
            shared.lock().counters.misaligned_ranges += 1;
            (StatusCode::PARTIAL_CONTENT, s - (s / 2).max(1), e)
        }
        Ok(Some((s, e))) => (StatusCode::PARTIAL_CONTENT, s, e),
        Err(_) => {
            let mut r = error_response(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                "Range not satisfiable",
            );
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return r;
        }
    };
    {
        let mut state = shared.lock();
        state.counters.downloads += 1;
        if truncate {
            state.counters.truncated_downloads += 1;
        }
    }
    // A truncated download sends part of the body and then fails it, so the connection closes
    // short of the Content-Length, as a dropped transfer does.
    let stop_at = if truncate { start + (end - start) / 2 } else { end };
    let counter = Arc::clone(&shared);
    let chunks = futures::stream::iter(file.chunks(start, stop_at)).map(move |chunk| {
        counter.download_bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        Ok::<_, std::io::Error>(chunk)
    });
    let chunks = match hostile.trickle {
        Some(rate) => {
            shared.lock().counters.trickled_downloads += 1;
            trickle(chunks, rate).boxed()
        }
        None => chunks.boxed(),
    };
    let body = if truncate {
        // Yield first: the connection flushes what it has (head and partial body) when the body
        // is not ready, so the client receives those bytes before the transfer fails.
        let failure = futures::stream::once(async {
            for _ in 0..3 {
                tokio::task::yield_now().await;
            }
            Err::<bytes::Bytes, _>(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "simulated truncation",
            ))
        });
        Body::from_stream(chunks.chain(failure))
    } else {
        Body::from_stream(chunks)
    };
    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(&(end - start).to_string()) {
        h.insert(header::CONTENT_LENGTH, v);
    }
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{len}", end - 1))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    response
}

/// The hostile file-host faults drawn for one download.
struct Hostile {
    misaligned: bool,
    no_length: bool,
    trickle: Option<u64>,
}

/// 200 without Content-Length, as HTTP/1.0 (the body ends when the connection closes), and only
/// the first half of the file: a clean end that is not the whole video.
fn without_length(shared: &Arc<Shared>, file: &VideoFile) -> Response {
    shared.lock().counters.downloads_without_length += 1;
    let half = file.len() / 2;
    let counter = Arc::clone(shared);
    let chunks = futures::stream::iter(file.chunks(0, half)).map(move |chunk| {
        counter.download_bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        Ok::<_, std::io::Error>(chunk)
    });
    let mut response = (StatusCode::OK, Body::from_stream(chunks)).into_response();
    *response.version_mut() = axum::http::Version::HTTP_10;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
    response
}

/// The same bytes, `rate` a second: ten small pieces a second (at least a byte each).
fn trickle(
    chunks: impl futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static,
    rate: u64,
) -> impl futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static {
    let piece = (rate / 10).max(1) as usize;
    let every = std::time::Duration::from_secs_f64(piece as f64 / rate as f64);
    chunks
        .flat_map(move |chunk| {
            let pieces: Vec<Result<bytes::Bytes, std::io::Error>> = match chunk {
                Ok(c) => (0..c.len())
                    .step_by(piece)
                    .map(|i| Ok(c.slice(i..(i + piece).min(c.len()))))
                    .collect(),
                Err(e) => vec![Err(e)],
            };
            futures::stream::iter(pieces)
        })
        .then(move |piece| async move {
            tokio::time::sleep(every).await;
            piece
        })
}
