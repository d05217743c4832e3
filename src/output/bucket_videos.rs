//! Videos into object storage: the second `VideoStore`. Each video goes from the download stream
//! into a multipart upload as it arrives, hashed on the way (BLAKE3), in parts of 5 MiB — never
//! whole in memory, never through a local file. The upload's id is journaled (durably) before its
//! first part, and its end after it completed or was aborted; a run killed in between has the
//! upload aborted on resume (`abort_open_uploads`), so no parts are orphaned and no partial object
//! ever stands under a video's name. The object's size is checked after completion.

use super::bucket::{Bucket, BucketError};
use super::download::{DownloadError, Downloaded};
use super::videos::OpenUpload;
use super::videos::{FetchLimits, VideoStore};
use crate::journal::{Record, StoredVideo};
use crate::store::{Fence, RunStore};
use futures::FutureExt;
use futures::future::BoxFuture;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Debug)]
pub struct BucketVideos {
    bucket: Bucket,
    journal: Arc<dyn RunStore>,
    /// Objects under `videos/` and their sizes, as listed at the start and stored since.
    known: Mutex<HashMap<String, u64>>,
}

fn object_of(job_id: &str) -> String {
    format!("{}/{job_id}.mp4", super::folder::VIDEOS)
}

fn now() -> String {
    crate::util::time_format::now()
}

impl BucketVideos {
    /// The store, with what `videos/` holds already (one listing, for `present`).
    pub async fn open(bucket: Bucket, journal: Arc<dyn RunStore>) -> Result<BucketVideos, BucketError> {
        let known = bucket.list_sizes(super::folder::VIDEOS).await?;
        Ok(BucketVideos {
            bucket,
            journal,
            known: Mutex::new(known),
        })
    }

    /// Records that an upload of `job`'s video ended (completed or aborted), under its claim.
    fn ended(&self, job: &str, upload_id: String, fence: Option<Fence>) {
        let record = Record::UploadEnded {
            job: job.to_string(),
            upload_id,
            at: now(),
        };
        self.journal.append(&record, fence);
    }

    /// Aborts the uploads a killed run left open (as the journal has them), recording each end.
    /// Returns how many were aborted, and the problems met (left for the next resume).
    pub async fn abort_open_uploads(&self, open: &[OpenUpload]) -> (usize, Vec<String>) {
        let mut aborted = 0;
        let mut problems = Vec::new();
        for OpenUpload {
            job,
            object,
            upload_id,
            fence,
        } in open
        {
            let ended = match self.bucket.abort(object, upload_id).await {
                Ok(()) => {
                    aborted += 1;
                    true
                }
                // Refused although this key can write here (the run's probe said so): the store
                // no longer knows the upload (s3s-fs answers 403 where S3 answers 404
                // NoSuchUpload, e.g. after a completion the kill interrupted). Not asked again.
                Err(e @ BucketError::Credentials(_)) => {
                    problems.push(format!("{object} (upload {upload_id}): {e}; taken as gone"));
                    true
                }
                Err(e) => {
                    problems.push(format!("{object} (upload {upload_id}): {e}"));
                    false
                }
            };
            if ended {
                self.ended(job, upload_id.clone(), *fence);
            }
        }
        (aborted, problems)
    }

    async fn fetch_into(
        &self,
        client: &reqwest::Client,
        url: &str,
        job_id: &str,
        fence: Option<Fence>,
        limits: FetchLimits,
    ) -> Result<Downloaded, DownloadError> {
        let lower = url.to_ascii_lowercase();
        if !(lower.starts_with("https://") || lower.starts_with("http://")) {
            return Err(DownloadError::Fatal("the video URL is not http(s)".into()));
        }
        let mut response = client
            .get(url)
            .send()
            .await
            .map_err(|e| DownloadError::Transient(crate::util::net::describe(e)))?;
        let status = response.status().as_u16();
        match status {
            200 => {}
            403 | 404 | 410 => return Err(DownloadError::Expired(status)),
            s if s >= 500 || s == 408 || s == 429 => {
                return Err(DownloadError::Transient(format!("HTTP {s} from the video server")));
            }
            s => return Err(DownloadError::Fatal(format!("HTTP {s} from the video server"))),
        }
        // Straight into the store, so the whole length must be known to accept the object.
        let Some(expected) = response.content_length() else {
            return Err(DownloadError::Transient(
                "the video server gave no length; the video is fetched again".into(),
            ));
        };
        if expected > limits.max_bytes {
            return Err(DownloadError::Fatal(format!(
                "the video is larger than the {}-byte limit",
                limits.max_bytes
            )));
        }
        let object = object_of(job_id);
        let store = |e: BucketError| DownloadError::Transient(format!("the object store: {e}"));
        let upload_id = self.bucket.begin(&object).await.map_err(store)?;
        let begun = Record::UploadBegun {
            job: job_id.to_string(),
            object: object.clone(),
            upload_id: upload_id.clone(),
            at: now(),
        };
        if let Err(e) = self.journal.append_durable(&begun, fence).await {
            let _ = self.bucket.abort(&object, &upload_id).await;
            if e.fenced {
                return Err(DownloadError::ClaimLost);
            }
            return Err(DownloadError::Fatal(format!("the journal: {e}")));
        }
        let mut writer = self.bucket.writer(&object, upload_id.clone());
        let window = limits.stall.window.max(std::time::Duration::from_millis(10));
        let floor = (limits.stall.min_bytes_per_second as f64 * window.as_secs_f64()) as u64;
        let mut window_start = tokio::time::Instant::now();
        let mut window_bytes = 0u64;
        let mut written = 0u64;
        let broke: Option<DownloadError> = loop {
            let read = tokio::time::timeout_at(window_start + window, response.chunk()).await;
            let window_over = tokio::time::Instant::now() >= window_start + window;
            match read {
                Ok(Ok(Some(chunk))) => {
                    window_bytes += chunk.len() as u64;
                    written += chunk.len() as u64;
                    if written > expected {
                        break Some(DownloadError::Transient(format!(
                            "the server sent more than the {expected} bytes it announced"
                        )));
                    }
                    if let Err(e) = writer.write(&chunk).await {
                        break Some(store(e));
                    }
                }
                Ok(Ok(None)) => break None,
                Ok(Err(e)) => {
                    break Some(DownloadError::Transient(format!(
                        "the transfer broke off after {written} bytes: {}",
                        crate::util::net::describe(e)
                    )));
                }
                Err(_) => {}
            }
            if window_over {
                if window_bytes < floor {
                    break Some(DownloadError::Transient(format!(
                        "the transfer stalled after {written} bytes: under {} bytes/s for {window:?}",
                        limits.stall.min_bytes_per_second
                    )));
                }
                window_start = tokio::time::Instant::now();
                window_bytes = 0;
            }
        };
        let broke = broke.or_else(|| {
            (written != expected)
                .then(|| DownloadError::Transient(format!("the transfer stopped at {written} of {expected} bytes")))
        });
        if let Some(e) = broke {
            // Nothing of it stays: its parts are deleted, and no object stands under its name.
            if writer.abort().await.is_ok() {
                self.ended(job_id, upload_id, fence);
            }
            return Err(e);
        }
        crate::util::crash::point("upload.before_complete");
        let done = match writer.finish().await {
            Ok(done) => done,
            Err(e) => {
                // Not completed, or completed wrong: neither parts nor the object are kept.
                if self.bucket.abort(&object, &upload_id).await.is_ok() {
                    self.ended(job_id, upload_id, fence);
                }
                let _ = self.bucket.delete(&object).await;
                return Err(store(e));
            }
        };
        self.ended(job_id, upload_id, fence);
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(object.clone(), done.bytes);
        Ok(Downloaded {
            path: object,
            bytes: done.bytes,
            checksum: done.checksum,
        })
    }
}

impl VideoStore for BucketVideos {
    fn fetch<'a>(
        &'a self,
        client: &'a reqwest::Client,
        url: &'a str,
        job_id: &'a str,
        fence: Option<Fence>,
        limits: FetchLimits,
    ) -> BoxFuture<'a, Result<Downloaded, DownloadError>> {
        self.fetch_into(client, url, job_id, fence, limits).boxed()
    }

    fn refresh<'a>(&'a self) -> BoxFuture<'a, ()> {
        async move {
            match self.bucket.list_sizes(super::folder::VIDEOS).await {
                Ok(listed) => *self.known.lock().unwrap_or_else(|e| e.into_inner()) = listed,
                Err(e) => tracing::warn!(error = %e, "the bucket's videos could not be listed"),
            }
        }
        .boxed()
    }

    fn abort_open<'a>(&'a self, open: Vec<OpenUpload>) -> BoxFuture<'a, ()> {
        async move {
            let (_, problems) = self.abort_open_uploads(&open).await;
            for problem in problems {
                tracing::warn!(%problem, "an unfinished upload could not be aborted");
            }
        }
        .boxed()
    }

    fn present(&self, video: &StoredVideo) -> bool {
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&video.path)
            .is_some_and(|n| *n == video.bytes)
    }
}
