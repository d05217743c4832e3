//! Local files to the service (contract §14): prepare (size and base64 MD5) → PUT the bytes to
//! `upload_url` with exactly the returned headers and never the API key → confirm. Each distinct
//! file (by content) is uploaded once per run and its URL reused while enough of its life is left:
//! a sixth of it, ten minutes of RunAPI's hour, so a create sent with it (or re-sent soon after)
//! still names a live file. Files are streamed, never held whole in memory, and checked against
//! the content the plan hashed twice: before the upload (for the MD5 that prepare needs) and as
//! the bytes are sent — a file edited in between is caught by the second, and its upload is
//! never confirmed, so no create names bytes nobody checked.

use super::api::RunApi;
use super::error::ApiError;
use crate::inputs::{Inputs, LocalFile, PLACEHOLDER};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use md5::{Digest, Md5};
use serde_json::Value;
use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Why a job's files could not be uploaded. `transient`: worth another try later.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct UploadError {
    pub message: String,
    pub transient: bool,
}

impl UploadError {
    fn fatal(message: impl Into<String>) -> UploadError {
        UploadError {
            message: message.into(),
            transient: false,
        }
    }

    fn from_api(what: &str, file: &LocalFile, error: &ApiError) -> UploadError {
        let transient = matches!(error.class(), super::Class::Transient | super::Class::RateLimited);
        UploadError {
            message: format!("uploading {} failed at {what}: {}", file.written, error.message()),
            transient,
        }
    }
}

/// A confirmed upload: its URL, when it stops being reused for new creates, and when a create
/// naming it must no longer be sent at all.
#[derive(Debug, Clone)]
struct Uploaded {
    url: String,
    reuse_until: SystemTime,
    send_until: SystemTime,
}

/// A job's body with its uploads' URLs, and until when it may be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedBody {
    pub body: String,
    pub send_until: Option<SystemTime>,
}

/// The uploads of one run, by content. One upload per file at a time: a second job needing the
/// same file waits for the first's upload and reuses it.
#[derive(Debug, Default)]
pub struct UploadCache {
    files: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Uploaded>>>>>,
    counts: Mutex<UploadCounts>,
}

/// What the run uploaded.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UploadCounts {
    pub files: u64,
    pub bytes: u64,
    pub reused: u64,
}

impl UploadCache {
    pub fn counts(&self) -> UploadCounts {
        *self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The request text with every local file's placeholder replaced by a live upload's URL.
    pub async fn body_for(
        &self,
        api: &RunApi,
        plain: &reqwest::Client,
        inputs: &Inputs,
        request: &str,
    ) -> Result<PreparedBody, UploadError> {
        let mut body = request.to_string();
        let mut send_until: Option<SystemTime> = None;
        let mut start = 0;
        while let Some(at) = body[start..].find(PLACEHOLDER) {
            let at = start + at;
            let end = at + PLACEHOLDER.len() + 32;
            let placeholder = body.get(at..end).unwrap_or_default().to_string();
            let Some(file) = inputs.by_placeholder(&placeholder) else {
                return Err(UploadError::fatal(format!("no local file for {placeholder}")));
            };
            let (url, until) = self.url_for(api, plain, file).await?;
            send_until = Some(send_until.map_or(until, |s| s.min(until)));
            // A URL is a JSON string's content here: escaped as one.
            let escaped = serde_json::to_string(&url).unwrap_or_default();
            let escaped = &escaped[1..escaped.len().saturating_sub(1)];
            body.replace_range(at..end, escaped);
            start = at + escaped.len();
        }
        Ok(PreparedBody { body, send_until })
    }

    async fn url_for(
        &self,
        api: &RunApi,
        plain: &reqwest::Client,
        file: &LocalFile,
    ) -> Result<(String, SystemTime), UploadError> {
        let slot = {
            let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
            Arc::clone(files.entry(file.hash.clone()).or_default())
        };
        let mut slot = slot.lock().await;
        if let Some(known) = slot.as_ref()
            && SystemTime::now() < known.reuse_until
        {
            self.counts.lock().unwrap_or_else(|e| e.into_inner()).reused += 1;
            return Ok((known.url.clone(), known.send_until));
        }
        let uploaded = upload(api, plain, file).await?;
        let url = (uploaded.url.clone(), uploaded.send_until);
        *slot = Some(uploaded);
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.files += 1;
        counts.bytes += file.bytes;
        Ok(url)
    }
}

/// Reads the file once for its MD5 (the prepare step needs it before the bytes go) and checks
/// it is still the content the plan hashed.
fn checksum(file: &LocalFile) -> Result<String, UploadError> {
    let mut reader = std::fs::File::open(&file.path)
        .map_err(|e| UploadError::fatal(format!("{} cannot be read: {e}", file.written)))?;
    let mut md5 = Md5::new();
    let mut blake = blake3::Hasher::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = reader
            .read(&mut buffer)
            .map_err(|e| UploadError::fatal(format!("{} cannot be read: {e}", file.written)))?;
        if n == 0 {
            break;
        }
        md5.update(&buffer[..n]);
        blake.update(&buffer[..n]);
    }
    if blake.finalize().to_hex().as_str() != file.hash {
        return Err(UploadError::fatal(format!(
            "{} changed since the run was planned; rerun to plan it afresh (its jobs get new ids)",
            file.written
        )));
    }
    Ok(STANDARD.encode(md5.finalize()))
}

/// What was sent: the length and BLAKE3 of every byte that went into the body.
type Sent = tokio::sync::oneshot::Receiver<(u64, String)>;

/// The file's bytes as a stream of chunks read on a blocking thread (a few in flight), hashed as
/// they are read for the body: the answer says what was actually sent, once it was all read.
fn stream(file: &LocalFile) -> Result<(reqwest::Body, Sent), UploadError> {
    let mut reader = std::fs::File::open(&file.path)
        .map_err(|e| UploadError::fatal(format!("{} cannot be read: {e}", file.written)))?;
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
    let (sent_tx, sent_rx) = tokio::sync::oneshot::channel();
    tokio::task::spawn_blocking(move || {
        let mut hasher = blake3::Hasher::new();
        let mut total = 0u64;
        loop {
            let mut chunk = vec![0u8; 64 * 1024];
            match reader.read(&mut chunk) {
                Ok(0) => {
                    let _ = sent_tx.send((total, hasher.finalize().to_hex().to_string()));
                    break;
                }
                Ok(n) => {
                    chunk.truncate(n);
                    hasher.update(&chunk);
                    total += n as u64;
                    if tx.blocking_send(Ok(bytes::Bytes::from(chunk))).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    break;
                }
            }
        }
    });
    let chunks = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    Ok((reqwest::Body::wrap_stream(chunks), sent_rx))
}

async fn upload(api: &RunApi, plain: &reqwest::Client, file: &LocalFile) -> Result<Uploaded, UploadError> {
    let owned = file.clone();
    let checksum = tokio::task::spawn_blocking(move || checksum(&owned))
        .await
        .map_err(|e| UploadError::fatal(format!("reading {} failed: {e}", file.written)))??;
    let name = std::path::Path::new(&file.written)
        .file_name()
        .map_or_else(|| "file".to_string(), |n| n.to_string_lossy().into_owned());
    let prepared = api
        .files_prepare(&name, file.bytes, &checksum, mime(file))
        .await
        .map_err(|e| UploadError::from_api("prepare", file, &e))?;
    let upload_url = prepared["upload_url"].as_str().unwrap_or_default().to_string();
    let signed_id = prepared["signed_id"].as_str().unwrap_or_default().to_string();
    if !crate::kling::is_http_url(&upload_url) || signed_id.is_empty() || api.key_in(&upload_url) {
        return Err(UploadError::fatal(format!(
            "uploading {} failed: the service's prepare answer has no usable upload_url and signed_id",
            file.written
        )));
    }
    // Exactly the returned headers, and nothing that carries the key: a plain client.
    let (body, sent) = stream(file)?;
    let mut put = plain.put(&upload_url).body(body);
    if let Some(headers) = prepared["headers"].as_object() {
        for (name, value) in headers {
            if name.eq_ignore_ascii_case("authorization") {
                continue;
            }
            if let Some(value) = value.as_str() {
                put = put.header(name.as_str(), value);
            }
        }
    }
    put = put.header(reqwest::header::CONTENT_LENGTH, file.bytes);
    api.pacer().acquire(super::Turn::Other).await;
    let answer = put.send().await.map_err(|e| UploadError {
        message: format!("uploading {} failed: {}", file.written, crate::util::net::describe(e)),
        transient: true,
    })?;
    let status = answer.status();
    if !status.is_success() {
        return Err(UploadError {
            message: format!("uploading {} failed: the upload host answered {status}", file.written),
            transient: status.is_server_error() || status.as_u16() == 429,
        });
    }
    // The bytes that went are the bytes the plan checked, or the upload is never confirmed (an
    // upload host need not check Content-MD5).
    match sent.await {
        Ok((bytes, hash)) if bytes == file.bytes && hash == file.hash => {}
        Ok(_) => {
            return Err(UploadError::fatal(format!(
                "{} changed while it was being uploaded (the bytes sent are not the ones planned); not used, nothing was created for it; rerun to plan it afresh (its jobs get new ids)",
                file.written
            )));
        }
        Err(_) => {
            return Err(UploadError {
                message: format!("uploading {} failed: the file was not read to its end", file.written),
                transient: true,
            });
        }
    }
    let confirmed = api
        .files_confirm(&signed_id)
        .await
        .map_err(|e| UploadError::from_api("confirm", file, &e))?;
    let url = confirmed["url"].as_str().unwrap_or_default().to_string();
    if !crate::kling::is_http_url(&url) || api.key_in(&url) {
        return Err(UploadError::fatal(format!(
            "uploading {} failed: the confirm answer has no usable url",
            file.written
        )));
    }
    let (reuse_until, send_until) = windows(&confirmed);
    Ok(Uploaded {
        url,
        reuse_until,
        send_until,
    })
}

/// A confirmed upload's URL is reused for new creates until a sixth of its life is left (ten
/// minutes of an hour), and a create naming it is sent (or re-sent) only until a twelfth is left
/// (five minutes), so the service never sees it expired. Its life is a duration on the service's
/// clock (`expires_at − created_at`), counted on this machine's from now: the two clocks need not
/// agree (a client 2 h ahead once judged every upload expired on arrival). Without both dates:
/// an hour.
fn windows(confirmed: &Value) -> (SystemTime, SystemTime) {
    windows_from(confirmed, SystemTime::now())
}

fn windows_from(confirmed: &Value, now: SystemTime) -> (SystemTime, SystemTime) {
    let parse = |key: &str| {
        confirmed[key]
            .as_str()
            .and_then(crate::util::time_format::parse_rfc3339)
    };
    let life = match (parse("created_at"), parse("expires_at")) {
        (Some(created), Some(expires)) if expires > created => expires.duration_since(created).unwrap_or_default(),
        _ => Duration::from_secs(3600),
    };
    (now + (life - life / 6), now + (life - life / 12))
}

fn mime(file: &LocalFile) -> &'static str {
    let lower = file.written.to_ascii_lowercase();
    let ext = lower.rsplit('.').next().unwrap_or_default();
    match ext {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "mp4" => "video/mp4",
        "mov" => "video/quicktime",
        "mp3" => "audio/mpeg",
        "wav" => "audio/wav",
        "m4a" => "audio/mp4",
        "aac" => "audio/aac",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod windows_tests {
    use super::*;

    /// The service's dates 2 h behind this machine's clock (or ahead): the windows are the same,
    /// counted from now.
    #[test]
    fn an_uploads_life_is_counted_on_this_machines_clock_whatever_the_services_says() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        for offset in [-7200i64, 0, 7200] {
            let service_now = if offset < 0 {
                now - Duration::from_secs(offset.unsigned_abs())
            } else {
                now + Duration::from_secs(offset as u64)
            };
            let confirmed = serde_json::json!({
                "created_at": crate::util::time_format::rfc3339(service_now),
                "expires_at": crate::util::time_format::rfc3339(service_now + Duration::from_secs(3600)),
            });
            let (reuse, send) = windows_from(&confirmed, now);
            assert_eq!(reuse, now + Duration::from_secs(3000), "offset {offset}");
            assert_eq!(send, now + Duration::from_secs(3300), "offset {offset}");
        }
    }
}
