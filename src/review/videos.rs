//! The review app's videos: a clip's file, found only by the path its run recorded, inside the run
//! folder (no `..`, no link leading out), answered with `Range` and streamed a chunk at a time.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use std::path::{Path, PathBuf};

/// The video at `relative` in `dir`, for a request with `range`; none when there is no such file
/// in the folder.
pub(super) async fn serve(dir: &Path, relative: &str, range: Option<String>) -> Option<Response> {
    let path = inside(dir, relative)?;
    let opened = tokio::task::spawn_blocking(move || open_range(&path, range.as_deref())).await;
    let Ok(Ok(ranged)) = opened else {
        return None;
    };
    let mut response = Response::new(Body::from_stream(chunks(ranged.file, ranged.start, ranged.end)));
    *response.status_mut() = ranged.status;
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=3600"));
    if let Ok(v) = HeaderValue::from_str(&(ranged.end - ranged.start).to_string()) {
        h.insert(header::CONTENT_LENGTH, v);
    }
    if let Some(v) = ranged.content_range.and_then(|c| HeaderValue::from_str(&c).ok()) {
        h.insert(header::CONTENT_RANGE, v);
    }
    Some(response)
}

/// What a video request is answered with: the file, the bytes `start..end` of it.
struct Ranged {
    status: StatusCode,
    file: std::fs::File,
    start: u64,
    end: u64,
    content_range: Option<String>,
}

fn open_range(path: &Path, range: Option<&str>) -> std::io::Result<Ranged> {
    let file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    Ok(match crate::util::range::parse_range(range, len) {
        Ok(None) => Ranged {
            status: StatusCode::OK,
            file,
            start: 0,
            end: len,
            content_range: None,
        },
        Ok(Some((start, end))) => Ranged {
            status: StatusCode::PARTIAL_CONTENT,
            file,
            start,
            end,
            content_range: Some(format!("bytes {start}-{}/{len}", end - 1)),
        },
        Err(crate::util::range::Unsatisfiable) => Ranged {
            status: StatusCode::RANGE_NOT_SATISFIABLE,
            file,
            start: 0,
            end: 0,
            content_range: Some(format!("bytes */{len}")),
        },
    })
}

/// The bytes `start..end` of `file`, 256 KiB at a time, each read on the blocking pool: a video
/// is never held whole in memory.
fn chunks(
    file: std::fs::File,
    start: u64,
    end: u64,
) -> impl futures::Stream<Item = std::io::Result<bytes::Bytes>> + Send {
    const CHUNK: u64 = 256 * 1024;
    futures::stream::unfold(Some((file, start)), move |state| async move {
        let (mut file, at) = state?;
        if at >= end {
            return None;
        }
        let want = (end - at).min(CHUNK) as usize;
        let read = tokio::task::spawn_blocking(move || {
            use std::io::{Read, Seek, SeekFrom};
            let mut buf = vec![0; want];
            file.seek(SeekFrom::Start(at))?;
            file.read_exact(&mut buf)?;
            Ok::<_, std::io::Error>((file, buf))
        })
        .await;
        match read {
            Ok(Ok((file, buf))) => Some((Ok(bytes::Bytes::from(buf)), Some((file, at + want as u64)))),
            Ok(Err(e)) => Some((Err(e), None)),
            Err(e) => Some((Err(std::io::Error::other(e)), None)),
        }
    })
}

/// `relative` under `dir`, when it names a regular file there (no `..`, no link leading out).
fn inside(dir: &Path, relative: &str) -> Option<PathBuf> {
    let rel = std::path::Path::new(relative);
    if rel.is_absolute() || rel.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
        return None;
    }
    let root = std::fs::canonicalize(dir).ok()?;
    let path = std::fs::canonicalize(dir.join(rel)).ok()?;
    (path.starts_with(&root) && path.is_file()).then_some(path)
}
