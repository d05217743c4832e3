//! Downloading a finished video: streamed to `videos/<JobId>.mp4.part` (never held in memory),
//! hashed while it streams, checked against Content-Length, fsynced, then renamed into place. A
//! partial file is continued with `Range` when the server answers 206 at the right offset, else
//! started again. The API key is never sent: this client has no credentials at all.

use crate::hex::hex;
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    /// Relative to the output folder: `videos/<JobId>.mp4`.
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// 403/404/410: the signed URL has expired; ask the API for a fresh one.
    #[error("the video URL has expired (HTTP {0})")]
    Expired(u16),
    /// Worth another try: 5xx, a reset, a transfer cut short.
    #[error("{0}")]
    Transient(String),
    #[error("{0}")]
    Fatal(String),
    /// The local disk: a run-level problem (disk full, permissions).
    #[error("cannot write {}: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

impl DownloadError {
    pub fn disk_full(&self) -> bool {
        matches!(self, DownloadError::Io { source, .. } if source.raw_os_error() == Some(28))
    }
}

/// File names for a job's video within `videos`.
pub fn paths(videos: &Path, job_id: &str) -> (PathBuf, PathBuf) {
    (
        videos.join(format!("{job_id}.mp4")),
        videos.join(format!("{job_id}.mp4.part")),
    )
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> DownloadError + '_ {
    move |source| DownloadError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Hashes an existing file (or partial file).
pub fn hash_file(path: &Path) -> std::io::Result<(u64, Sha256)> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            return Ok((total, hasher));
        }
        hasher.update(&buffer[..n]);
        total += n as u64;
    }
}

/// Whether the file recorded for a job is on disk with the recorded size and hash.
pub fn verify(folder: &Path, relative: &str, bytes: u64, sha256: &str) -> bool {
    match hash_file(&folder.join(relative)) {
        Ok((len, hasher)) => len == bytes && hex(&hasher.finalize()) == sha256,
        Err(_) => false,
    }
}

fn content_range_start(value: Option<&reqwest::header::HeaderValue>) -> Option<u64> {
    let text = value?.to_str().ok()?;
    text.strip_prefix("bytes ")?.split('-').next()?.trim().parse().ok()
}

/// Downloads `url` for `job_id` into `videos`, at most `max_bytes`.
pub async fn download(
    client: &reqwest::Client,
    url: &str,
    videos: &Path,
    job_id: &str,
    max_bytes: u64,
) -> Result<Downloaded, DownloadError> {
    let lower = url.to_ascii_lowercase();
    if !(lower.starts_with("https://") || lower.starts_with("http://")) {
        return Err(DownloadError::Fatal("the video URL is not http(s)".into()));
    }
    let (final_path, part) = paths(videos, job_id);
    tracing::debug!(job = job_id, url = crate::logging::redact_url(url), "downloading");
    let started = std::time::Instant::now();
    let have = std::fs::metadata(&part).map_or(0, |m| m.len());
    let mut request = client.get(url);
    if have > 0 {
        request = request.header(reqwest::header::RANGE, format!("bytes={have}-"));
    }
    let mut response = request
        .send()
        .await
        .map_err(|e| DownloadError::Transient(crate::client::ApiError::transport(e).message()))?;
    let status = response.status().as_u16();
    match status {
        200 | 206 => {}
        403 | 404 | 410 => return Err(DownloadError::Expired(status)),
        416 => {
            // The partial file is no use to this server: start again next time.
            std::fs::remove_file(&part).map_err(io_error(&part))?;
            return Err(DownloadError::Transient(
                "the server could not continue the partial file".into(),
            ));
        }
        s if s >= 500 || s == 408 || s == 429 => {
            return Err(DownloadError::Transient(format!("HTTP {s} from the video server")));
        }
        s => return Err(DownloadError::Fatal(format!("HTTP {s} from the video server"))),
    }
    let resume = status == 206
        && have > 0
        && content_range_start(response.headers().get(reqwest::header::CONTENT_RANGE)) == Some(have);
    let (file, mut hasher, mut written) = if resume {
        let (len, hasher) = hash_file(&part).map_err(io_error(&part))?;
        let file = OpenOptions::new().append(true).open(&part).map_err(io_error(&part))?;
        (file, hasher, len)
    } else {
        let file = File::create(&part).map_err(io_error(&part))?;
        (file, Sha256::new(), 0u64)
    };
    // Network chunks are small; one write per 256 KiB instead of one per chunk.
    let mut file = std::io::BufWriter::with_capacity(256 * 1024, file);
    let expected = response.content_length().map(|n| n + written);
    if expected.is_some_and(|n| n > max_bytes) {
        let _ = std::fs::remove_file(&part);
        return Err(DownloadError::Fatal(format!(
            "the video is larger than the {max_bytes}-byte limit"
        )));
    }
    let mut first = true;
    loop {
        let chunk = match response.chunk().await {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(e) => {
                let _ = file.flush().map(|()| file.get_ref().sync_data());
                return Err(DownloadError::Transient(format!(
                    "the transfer broke off after {written} bytes: {}",
                    crate::client::ApiError::transport(e).message()
                )));
            }
        };
        written += chunk.len() as u64;
        if written > max_bytes {
            drop(file);
            let _ = std::fs::remove_file(&part);
            return Err(DownloadError::Fatal(format!(
                "the video is larger than the {max_bytes}-byte limit"
            )));
        }
        hasher.update(&chunk);
        file.write_all(&chunk).map_err(io_error(&part))?;
        if first {
            first = false;
            crate::crash::point("download.mid");
        }
    }
    if let Some(n) = expected
        && n != written
    {
        let _ = file.flush().map(|()| file.get_ref().sync_data());
        return Err(DownloadError::Transient(format!(
            "the transfer stopped at {written} of {n} bytes"
        )));
    }
    // fsync, rename and the folder's fsync block for milliseconds: not on the runner's thread.
    let videos = videos.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let file = file.into_inner().map_err(|e| io_error(&part)(e.into_error()))?;
        file.sync_all().map_err(io_error(&part))?;
        drop(file);
        crate::crash::point("download.before_rename");
        std::fs::rename(&part, &final_path).map_err(io_error(&final_path))?;
        if let Ok(dir) = File::open(&videos) {
            let _ = dir.sync_all();
        }
        Ok::<(), DownloadError>(())
    })
    .await
    .map_err(|e| DownloadError::Fatal(format!("the file could not be finished: {e}")))??;
    tracing::debug!(
        job = job_id,
        bytes = written,
        seconds = started.elapsed().as_secs_f64(),
        "downloaded"
    );
    Ok(Downloaded {
        path: format!("videos/{job_id}.mp4"),
        bytes: written,
        sha256: hex(&hasher.finalize()),
    })
}
