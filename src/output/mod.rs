//! Where a run's output goes: the output folder (the checkpoint's home, its lock, atomic whole
//! files) and the videos in it, streamed, verified and renamed into place.

pub mod download;
pub mod folder;
