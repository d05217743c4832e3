//! Where finished videos go. `VideoStore` is the seam: fetch a video into the store (streamed,
//! verified, put in place) and say whether a recorded one is still there as recorded. Today's
//! implementation is the `videos/` folder of the output folder; object storage is meant to be a
//! second implementation behind the same trait. The journal records each video's location as the
//! store returned it, so nothing recomputes `videos/<id>.mp4`.

use super::download::{DownloadError, Downloaded, Stall};
use crate::journal::StoredVideo;
use crate::store::Fence;
use futures::FutureExt;
use futures::future::BoxFuture;
use std::path::PathBuf;

/// How one fetch may go: the largest video accepted and when a transfer counts as stalled.
#[derive(Debug, Clone, Copy)]
pub struct FetchLimits {
    pub max_bytes: u64,
    pub stall: Stall,
}

/// An upload a run left open: (job, object, upload id), and the claim its job is held under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenUpload {
    pub job: String,
    pub object: String,
    pub upload_id: String,
    pub fence: Option<Fence>,
}

pub trait VideoStore: Send + Sync + std::fmt::Debug {
    /// Streams `url` into the store as `job_id`'s video, under the claim `fence` (none: a run of
    /// its own); the API key is never part of `client`.
    fn fetch<'a>(
        &'a self,
        client: &'a reqwest::Client,
        url: &'a str,
        job_id: &'a str,
        fence: Option<Fence>,
        limits: FetchLimits,
    ) -> BoxFuture<'a, Result<Downloaded, DownloadError>>;

    /// Whether a recorded video is still in the store at its recorded size.
    fn present(&self, video: &StoredVideo) -> bool;

    /// Looks at the store again (another worker's videos), for `present`.
    fn refresh<'a>(&'a self) -> BoxFuture<'a, ()> {
        async {}.boxed()
    }

    /// Ends uploads another run (or a dead worker) left open: (job, object, upload id), under the
    /// claim `fence` of each job. Nothing to do for a store without uploads.
    fn abort_open<'a>(&'a self, open: Vec<OpenUpload>) -> BoxFuture<'a, ()> {
        let _ = open;
        async {}.boxed()
    }
}

/// The `videos/` folder inside an output folder.
#[derive(Debug, Clone)]
pub struct LocalVideos {
    /// The output folder; recorded paths are relative to it.
    root: PathBuf,
}

impl LocalVideos {
    pub fn new(root: impl Into<PathBuf>) -> LocalVideos {
        LocalVideos { root: root.into() }
    }
}

impl VideoStore for LocalVideos {
    fn fetch<'a>(
        &'a self,
        client: &'a reqwest::Client,
        url: &'a str,
        job_id: &'a str,
        fence: Option<Fence>,
        limits: FetchLimits,
    ) -> BoxFuture<'a, Result<Downloaded, DownloadError>> {
        let videos = self.root.join(super::folder::VIDEOS);
        async move {
            super::download::download(client, url, &videos, job_id, fence, limits.max_bytes, limits.stall).await
        }
        .boxed()
    }

    fn present(&self, video: &StoredVideo) -> bool {
        super::download::present(&self.root, &video.path, video.bytes)
    }
}
