//! Downloading a finished video: streamed to `videos/<JobId>.mp4.part` (never held in memory),
//! hashed (BLAKE3) while it streams, checked against its whole length (Content-Length, a
//! Content-Range total, or a probe when the server gave none), fsynced, then put in place. A
//! worker of a shared sweep writes to a part file of its own claim (`<JobId>.mp4.<fence>.part`),
//! so two workers never write one file, and a video is put at its final name only where none
//! stands, or where the one that stands is not the same video: what is recorded is what is there.
//! A
//! partial file is continued with `Range` only when the server answers 206 exactly at the offset
//! asked for, else started again. A transfer under a minimum rate for a while is cut (`Stall`).
//! Symlinks in the videos folder are removed, never followed. The API key is never sent: this
//! client has no credentials at all.

use crate::store::Fence;
use crate::util::hex::hex;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    /// Relative to the output folder: `videos/<JobId>.mp4`.
    pub path: String,
    pub bytes: u64,
    /// `blake3:<64 hex>` of the file's bytes.
    pub checksum: String,
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
    /// A shared sweep's store refused a record of this fetch: another worker holds the job now.
    #[error("another worker has claimed this job since")]
    ClaimLost,
}

impl DownloadError {
    pub fn disk_full(&self) -> bool {
        matches!(self, DownloadError::Io { source, .. } if source.raw_os_error() == Some(28))
    }
}

/// File names for a job's video within `videos`: its final name, and the part file of the claim
/// `fence` (none: a run of its own).
pub fn paths(videos: &Path, job_id: &str, fence: Option<Fence>) -> (PathBuf, PathBuf) {
    let part = match fence {
        None => format!("{job_id}.mp4.part"),
        Some(Fence(f)) => format!("{job_id}.mp4.{f}.part"),
    };
    (videos.join(format!("{job_id}.mp4")), videos.join(part))
}

/// Removes the part files of older claims on the job (a paused worker's, which may still be
/// written to: on Unix it then writes to a file no longer in the folder, and can put nothing in
/// place from it). A job changes hands a few times at most: the last 64 claims are looked for by
/// name, never by listing a folder of thousands of videos.
fn remove_older_parts(videos: &Path, job_id: &str, fence: Fence) {
    for older in fence.0.saturating_sub(64)..fence.0 {
        let (_, part) = paths(videos, job_id, Some(Fence(older)));
        let _ = std::fs::remove_file(part);
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> DownloadError + '_ {
    move |source| DownloadError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Hashes an existing file (or partial file).
pub fn hash_file(path: &Path) -> std::io::Result<(u64, blake3::Hasher)> {
    let mut file = File::open(path)?;
    let mut hasher = blake3::Hasher::new();
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

/// The recorded form of a finished hash.
pub fn checksum(hasher: &blake3::Hasher) -> String {
    format!("blake3:{}", hex(hasher.finalize().as_bytes()))
}

/// Whether the file recorded for a job is still on disk at its recorded size. This is what a
/// resume checks: files are fsynced before they are renamed into place, so a recorded file is
/// whole unless someone cut or removed it, and re-reading every video (gigabytes, for a real
/// sweep) before the first submit would cost more than it could find.
pub fn present(folder: &Path, relative: &str, bytes: u64) -> bool {
    std::fs::metadata(folder.join(relative)).is_ok_and(|m| m.is_file() && m.len() == bytes)
}

/// `Content-Range: bytes a-b/total` as (a, b, total); `None` for anything else (`*/total`, an
/// unknown total, garbage).
fn content_range(value: Option<&reqwest::header::HeaderValue>) -> Option<(u64, u64, u64)> {
    let text = value?.to_str().ok()?.trim();
    let (range, total) = text.strip_prefix("bytes ")?.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    let (a, b, total): (u64, u64, u64) = (
        a.trim().parse().ok()?,
        b.trim().parse().ok()?,
        total.trim().parse().ok()?,
    );
    (a <= b && b < total).then_some((a, b, total))
}

/// `Content-Range: bytes */total` (a 416's statement of the file's length).
fn unsatisfied_total(value: Option<&reqwest::header::HeaderValue>) -> Option<u64> {
    value?
        .to_str()
        .ok()?
        .trim()
        .strip_prefix("bytes */")?
        .trim()
        .parse()
        .ok()
}

/// When a transfer counts as stalled (curl's `--speed-limit` / `--speed-time`): fewer than
/// `min_bytes_per_second` on average over `window`.
#[derive(Debug, Clone, Copy)]
pub struct Stall {
    pub min_bytes_per_second: u64,
    pub window: std::time::Duration,
}

impl Default for Stall {
    fn default() -> Stall {
        Stall {
            min_bytes_per_second: 1024,
            window: std::time::Duration::from_secs(30),
        }
    }
}

/// The length of the partial file to continue, after removing anything at `part` that is not a
/// regular file (a planted symlink is removed, never followed).
fn partial_length(part: &Path) -> Result<u64, DownloadError> {
    match std::fs::symlink_metadata(part) {
        Ok(m) if m.file_type().is_file() => Ok(m.len()),
        Ok(_) => {
            std::fs::remove_file(part).map_err(io_error(part))?;
            Ok(0)
        }
        Err(_) => Ok(0),
    }
}

fn transport(e: reqwest::Error) -> String {
    crate::util::net::describe(e)
}

/// Downloads `url` for `job_id` into `videos`, at most `max_bytes`. A file is accepted only when
/// its whole length is known (Content-Length, a Content-Range total, or a probe) and matched.
pub async fn download(
    client: &reqwest::Client,
    url: &str,
    videos: &Path,
    job_id: &str,
    fence: Option<Fence>,
    max_bytes: u64,
    stall: Stall,
) -> Result<Downloaded, DownloadError> {
    let lower = url.to_ascii_lowercase();
    if !(lower.starts_with("https://") || lower.starts_with("http://")) {
        return Err(DownloadError::Fatal("the video URL is not http(s)".into()));
    }
    let (final_path, part) = paths(videos, job_id, fence);
    if let Some(fence) = fence {
        remove_older_parts(videos, job_id, fence);
    }
    tracing::debug!(job = job_id, url = %crate::util::logging::redact_url(url), "downloading");
    let started = std::time::Instant::now();
    let have = partial_length(&part)?;
    let mut request = client.get(url);
    if have > 0 {
        request = request.header(reqwest::header::RANGE, format!("bytes={have}-"));
    }
    let mut response = request
        .send()
        .await
        .map_err(|e| DownloadError::Transient(transport(e)))?;
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
    let length = response.content_length();
    // Where the body starts in the file, and the file's whole length if the answer says it.
    let (resume, expected) = if status == 206 {
        // A 206 is used only when it starts exactly where asked and states its total, and its
        // body is exactly that range.
        match content_range(response.headers().get(reqwest::header::CONTENT_RANGE)) {
            Some((a, b, total)) if a == have && length.is_none_or(|n| n == b - a + 1) && b + 1 == total => {
                (have > 0, Some(total))
            }
            _ => {
                if have > 0 {
                    std::fs::remove_file(&part).map_err(io_error(&part))?;
                }
                return Err(DownloadError::Transient(format!(
                    "the server answered a range that does not start at byte {have}; starting again from zero"
                )));
            }
        }
    } else {
        (false, length)
    };
    if expected.is_some_and(|n| n > max_bytes) {
        let _ = std::fs::remove_file(&part);
        return Err(DownloadError::Fatal(format!(
            "the video is larger than the {max_bytes}-byte limit"
        )));
    }
    // The bytes are hashed and written on a blocking thread while the next ones arrive: the
    // runner's threads only move buffers, and hashing overlaps the network.
    let (pieces, inbox) = tokio::sync::mpsc::channel::<Piece>(PIPELINE_CHUNKS);
    let sink = Sink {
        part: part.clone(),
        final_path,
        videos: videos.to_path_buf(),
        resume,
    };
    let worker = tokio::task::spawn_blocking(move || sink.run(inbox, fence));
    let mut written = if resume { have } else { 0 };
    let mut broke: Option<DownloadError> = None;
    let window = stall.window.max(std::time::Duration::from_millis(10));
    let floor = (stall.min_bytes_per_second as f64 * window.as_secs_f64()) as u64;
    let mut window_start = tokio::time::Instant::now();
    let mut window_bytes = 0u64;
    loop {
        let read = tokio::time::timeout_at(window_start + window, response.chunk()).await;
        let window_over = tokio::time::Instant::now() >= window_start + window;
        let chunk = match read {
            Ok(Ok(Some(c))) => Some(c),
            Ok(Ok(None)) => break,
            Ok(Err(e)) => {
                broke = Some(DownloadError::Transient(format!(
                    "the transfer broke off after {written} bytes: {}",
                    transport(e)
                )));
                break;
            }
            Err(_) => None,
        };
        if let Some(chunk) = chunk {
            window_bytes += chunk.len() as u64;
            written += chunk.len() as u64;
            if written > max_bytes {
                broke = Some(DownloadError::Fatal(format!(
                    "the video is larger than the {max_bytes}-byte limit"
                )));
                break;
            }
            if pieces.send(Piece::Data(chunk)).await.is_err() {
                // The writer stopped (a disk error): its answer says why.
                break;
            }
        }
        if window_over {
            if window_bytes < floor {
                broke = Some(DownloadError::Transient(format!(
                    "the transfer stalled after {written} bytes: under {} bytes/s for {:?}",
                    stall.min_bytes_per_second, window
                )));
                break;
            }
            window_start = tokio::time::Instant::now();
            window_bytes = 0;
        }
    }
    if broke.is_none() {
        broke = match expected {
            Some(n) if n != written => Some(DownloadError::Transient(format!(
                "the transfer stopped at {written} of {n} bytes"
            ))),
            Some(_) => None,
            // No length was given: only the server's own word on the total accepts the file.
            None => confirm_length(client, url, written).await.err(),
        };
    }
    let received = started.elapsed().as_secs_f64();
    if broke.is_none() {
        let _ = pieces.send(Piece::Finish).await;
    }
    // Without `Finish` the writer keeps what it has as the partial file, flushed to disk.
    drop(pieces);
    let finished = worker
        .await
        .map_err(|e| DownloadError::Fatal(format!("the file could not be finished: {e}")))?;
    let (bytes, checksum) = match (finished, broke) {
        (Err(e), _) => return Err(e),
        (Ok(_), Some(e @ DownloadError::Fatal(_))) => {
            let _ = std::fs::remove_file(&part);
            return Err(e);
        }
        (Ok(_), Some(e)) => return Err(e),
        (Ok(None), None) => {
            return Err(DownloadError::Transient("the file was not finished".into()));
        }
        (Ok(Some(done)), None) => done,
    };
    tracing::debug!(
        job = job_id,
        bytes,
        seconds = started.elapsed().as_secs_f64(),
        received_seconds = received,
        "downloaded"
    );
    Ok(Downloaded {
        path: format!("videos/{job_id}.mp4"),
        bytes,
        checksum,
    })
}

/// A body that came without a length ended after `have` bytes: ask for what lies beyond. Only a
/// 416 stating `bytes */have` confirms the file is whole; more bytes mean it was cut (the partial
/// file is kept and continued next time).
async fn confirm_length(client: &reqwest::Client, url: &str, have: u64) -> Result<(), DownloadError> {
    let unconfirmed = || {
        DownloadError::Transient(format!(
            "the server sent {have} bytes without saying the video's length, and would not confirm it"
        ))
    };
    let probe = client
        .get(url)
        .header(reqwest::header::RANGE, format!("bytes={have}-"))
        .send()
        .await
        .map_err(|e| DownloadError::Transient(transport(e)))?;
    let range = probe.headers().get(reqwest::header::CONTENT_RANGE);
    match probe.status().as_u16() {
        416 if unsatisfied_total(range) == Some(have) => Ok(()),
        206 => match content_range(range) {
            Some((_, _, total)) => Err(DownloadError::Transient(format!(
                "the transfer stopped at {have} of {total} bytes"
            ))),
            None => Err(unconfirmed()),
        },
        _ => Err(unconfirmed()),
    }
}

/// Chunks in flight between the network and the writer (hyper's are up to a few hundred KiB).
const PIPELINE_CHUNKS: usize = 8;

enum Piece {
    Data(bytes::Bytes),
    /// Every byte has arrived and checked out: make the file durable and put it in place.
    Finish,
}

/// The writing end of a download: appends to the `.part` file and hashes what it writes.
struct Sink {
    part: PathBuf,
    final_path: PathBuf,
    videos: PathBuf,
    resume: bool,
}

impl Sink {
    /// `Some((bytes, checksum))` once the video is in place; `None` when the sender stopped without
    /// `Finish` (the partial file is kept, flushed, for a later `Range` request).
    fn run(
        self,
        mut inbox: tokio::sync::mpsc::Receiver<Piece>,
        fence: Option<Fence>,
    ) -> Result<Option<(u64, String)>, DownloadError> {
        let part = &self.part;
        let (file, mut hasher, mut written) = if self.resume {
            let (len, hasher) = hash_file(part).map_err(io_error(part))?;
            let file = OpenOptions::new().append(true).open(part).map_err(io_error(part))?;
            (file, hasher, len)
        } else {
            // Whatever stood there goes, and the file is made new: a planted symlink is never
            // followed.
            match std::fs::remove_file(part) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_error(part)(e)),
                _ => {}
            }
            let file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(part)
                .map_err(io_error(part))?;
            (file, blake3::Hasher::new(), 0u64)
        };
        // Network chunks are small; one write per 256 KiB instead of one per chunk.
        let mut file = std::io::BufWriter::with_capacity(256 * 1024, file);
        let mut first = true;
        let mut finished = false;
        while let Some(piece) = inbox.blocking_recv() {
            match piece {
                Piece::Data(chunk) => {
                    hasher.update(&chunk);
                    file.write_all(&chunk).map_err(io_error(part))?;
                    written += chunk.len() as u64;
                    if first {
                        first = false;
                        crate::util::crash::point("download.mid");
                    }
                }
                Piece::Finish => {
                    finished = true;
                    break;
                }
            }
        }
        let file = file.into_inner().map_err(|e| io_error(part)(e.into_error()))?;
        if !finished {
            let _ = file.sync_data();
            return Ok(None);
        }
        file.sync_all().map_err(io_error(part))?;
        drop(file);
        crate::util::crash::point("download.before_rename");
        let sum = checksum(&hasher);
        match place(part, &self.final_path, written, &sum) {
            // A newer claim on the job removed this claim's part file: it is not ours to place.
            Err(DownloadError::Io { source, .. })
                if fence.is_some() && source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Err(DownloadError::ClaimLost);
            }
            other => other?,
        }
        if let Ok(dir) = File::open(&self.videos) {
            let _ = dir.sync_all();
        }
        Ok(Some((written, sum)))
    }
}

/// Puts the verified file `part` (`bytes` long, hashing to `sum`) at `final_path`. Where nothing
/// stands, it is linked there (never over another file: a worker that lost its claim cannot swap
/// a video a newer claim put in place). Where the same video stands, that one is kept. Where
/// another file stands (cut, edited, left by an older version), it is replaced. Either way the
/// file at `final_path` afterwards has exactly these bytes, as recorded.
fn place(part: &Path, final_path: &Path, bytes: u64, sum: &str) -> Result<(), DownloadError> {
    match std::fs::hard_link(part, final_path) {
        Ok(()) => {
            let _ = std::fs::remove_file(part);
            return Ok(());
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(io_error(part)(e)),
        // A file system without hard links: the plain rename.
        Err(_) => return std::fs::rename(part, final_path).map_err(io_error(final_path)),
    }
    let same = std::fs::symlink_metadata(final_path).is_ok_and(|m| m.file_type().is_file() && m.len() == bytes)
        && hash_file(final_path).is_ok_and(|(n, h)| n == bytes && checksum(&h) == sum);
    if same {
        let _ = std::fs::remove_file(part);
        return Ok(());
    }
    std::fs::rename(part, final_path).map_err(io_error(final_path))
}
