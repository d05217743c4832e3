//! The videos the simulator serves: a real one-second MP4 followed by a top-level `free` box
//! whose contents are derived from the task id. Any size can be served (a `free` box keeps the
//! file valid and playable), every task's file differs, and the bytes at any offset are computed
//! on the fly, so Range requests and gigabyte files need no memory.

use bytes::Bytes;
use sha2::{Digest, Sha256};

const BASE: &[u8] = include_bytes!("../../assets/sim.mp4");
const PATTERN_LEN: usize = 4096;
/// Header of a `free` box with a 32-bit size, and with a 64-bit `largesize`.
const SMALL_HEADER: u64 = 8;
const LARGE_HEADER: u64 = 16;
/// The smallest padding: a header and eight task-specific bytes.
const MIN_PADDING: u64 = SMALL_HEADER + 8;

#[derive(Debug, Clone)]
pub(super) struct VideoFile {
    len: u64,
    header: Vec<u8>,
    pattern: Vec<u8>,
}

impl VideoFile {
    pub(super) fn new(task_id: &str, requested_len: u64) -> VideoFile {
        let len = requested_len.max(BASE.len() as u64 + MIN_PADDING);
        let padding = len - BASE.len() as u64;
        let header = if padding <= u64::from(u32::MAX) {
            let mut h = (padding as u32).to_be_bytes().to_vec();
            h.extend_from_slice(b"free");
            h
        } else {
            let mut h = 1u32.to_be_bytes().to_vec();
            h.extend_from_slice(b"free");
            h.extend_from_slice(&padding.to_be_bytes());
            h
        };
        debug_assert!(header.len() as u64 == SMALL_HEADER || header.len() as u64 == LARGE_HEADER);
        let mut pattern = Vec::with_capacity(PATTERN_LEN);
        let mut block = Sha256::digest(task_id.as_bytes());
        while pattern.len() < PATTERN_LEN {
            pattern.extend_from_slice(&block);
            block = Sha256::digest(block);
        }
        VideoFile { len, header, pattern }
    }

    pub(super) fn len(&self) -> u64 {
        self.len
    }

    /// Fills `buf` with the file's bytes from `offset` (stopping at the end of the file).
    pub(super) fn read_at(&self, mut offset: u64, buf: &mut [u8]) -> usize {
        let mut written = 0;
        let base = BASE.len() as u64;
        let header_end = base + self.header.len() as u64;
        while written < buf.len() && offset < self.len {
            let out = &mut buf[written..];
            let n = if offset < base {
                let src = &BASE[offset as usize..];
                let n = src.len().min(out.len());
                out[..n].copy_from_slice(&src[..n]);
                n
            } else if offset < header_end {
                let src = &self.header[(offset - base) as usize..];
                let n = src.len().min(out.len());
                out[..n].copy_from_slice(&src[..n]);
                n
            } else {
                let at = ((offset - header_end) % PATTERN_LEN as u64) as usize;
                let left_in_file = (self.len - offset) as usize;
                let n = (PATTERN_LEN - at).min(out.len()).min(left_in_file.max(1));
                out[..n].copy_from_slice(&self.pattern[at..at + n]);
                n
            };
            written += n;
            offset += n as u64;
        }
        written
    }

    /// The bytes in `start..end` as chunks of at most 64 KiB.
    pub(super) fn chunks(&self, start: u64, end: u64) -> impl Iterator<Item = Bytes> + Send + 'static {
        let file = self.clone();
        let mut at = start.min(end);
        std::iter::from_fn(move || {
            if at >= end {
                return None;
            }
            let n = (end - at).min(64 * 1024) as usize;
            let mut buf = vec![0u8; n];
            let got = file.read_at(at, &mut buf);
            buf.truncate(got);
            at += got as u64;
            (got > 0).then(|| Bytes::from(buf))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(file: &VideoFile) -> Vec<u8> {
        file.chunks(0, file.len()).flat_map(|b| b.to_vec()).collect()
    }

    #[test]
    fn padded_file_is_base_plus_one_free_box() {
        let file = VideoFile::new("task-1", 200_000);
        let bytes = whole(&file);
        assert_eq!(bytes.len(), 200_000);
        assert_eq!(&bytes[..BASE.len()], BASE);
        let size = u32::from_be_bytes(bytes[BASE.len()..BASE.len() + 4].try_into().unwrap()) as usize;
        assert_eq!(&bytes[BASE.len() + 4..BASE.len() + 8], b"free");
        assert_eq!(
            BASE.len() + size,
            bytes.len(),
            "the free box runs to the end of the file"
        );
    }

    #[test]
    fn files_differ_per_task_and_reads_agree_at_any_offset() {
        let a = VideoFile::new("task-a", 10_000);
        let b = VideoFile::new("task-b", 10_000);
        assert_ne!(whole(&a), whole(&b));
        let all = whole(&a);
        for start in [0u64, 5, 2_963, 2_970, 4_000, 9_999] {
            let part: Vec<u8> = a.chunks(start, 10_000).flat_map(|c| c.to_vec()).collect();
            assert_eq!(part, all[start as usize..], "from {start}");
        }
        assert_eq!(VideoFile::new("x", 0).len(), BASE.len() as u64 + MIN_PADDING);
    }
}
