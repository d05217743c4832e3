//! Where a run's output goes: the output folder (the checkpoint's home, its lock, atomic whole
//! files) and the videos in it, behind the `VideoStore` seam (`videos`), streamed, verified and
//! renamed into place (`download`).

pub mod bucket;
pub mod bucket_videos;
pub mod download;
pub mod folder;
pub mod videos;
