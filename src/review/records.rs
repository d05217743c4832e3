//! What reviewers said about a run's clips: ratings, picks, notes and blind votes, each an
//! append-only, fsynced JSON line in `reviews.jsonl` beside the run's journal, with the reviewer
//! and the time. The run never reads or writes this file, so reviewing never disturbs a run; a
//! crash loses at most the line being written (a cut last line is dropped on reading). `Reviews`
//! folds the records: the latest rating, pick and note of each reviewer for each clip, and every
//! vote. Reviewers' apps may write the same file at once: each record is one `write` to a file
//! opened for appending, so lines never interleave, and nothing already written is ever cut.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The file beside the journal.
pub const REVIEWS: &str = "reviews.jsonl";

/// Which clip a vote preferred.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Winner {
    Left,
    Right,
    Tie,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ReviewRecord {
    /// A rating from 1 to 5 (none: the reviewer took theirs back).
    Rating {
        job: String,
        rating: Option<u8>,
        reviewer: String,
        at: String,
    },
    /// A pick (a star): the reviewer chose this clip, or took the choice back.
    Pick {
        job: String,
        picked: bool,
        reviewer: String,
        at: String,
    },
    Note {
        job: String,
        note: String,
        reviewer: String,
        at: String,
    },
    /// A blind vote between two clips: which was on which side, and which won.
    Vote {
        left: String,
        right: String,
        winner: Winner,
        reviewer: String,
        at: String,
    },
}

impl ReviewRecord {
    pub fn reviewer(&self) -> &str {
        match self {
            ReviewRecord::Rating { reviewer, .. }
            | ReviewRecord::Pick { reviewer, .. }
            | ReviewRecord::Note { reviewer, .. }
            | ReviewRecord::Vote { reviewer, .. } => reviewer,
        }
    }
}

/// One vote as the scores read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vote {
    pub left: String,
    pub right: String,
    pub winner: Winner,
    pub reviewer: String,
}

/// What the reviewers said of one clip.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClipReview {
    /// Each reviewer's latest rating.
    pub ratings: BTreeMap<String, u8>,
    /// Each reviewer's latest pick.
    pub picks: BTreeMap<String, bool>,
    /// Each reviewer's latest note (an empty one is no note).
    pub notes: BTreeMap<String, String>,
}

impl ClipReview {
    pub fn mean_rating(&self) -> Option<f64> {
        (!self.ratings.is_empty())
            .then(|| self.ratings.values().map(|r| f64::from(*r)).sum::<f64>() / self.ratings.len() as f64)
    }

    /// Picked by any reviewer.
    pub fn picked(&self) -> bool {
        self.picks.values().any(|p| *p)
    }
}

/// Every record folded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reviews {
    pub clips: BTreeMap<String, ClipReview>,
    pub votes: Vec<Vote>,
    /// Records read (for a reader to tell whether anything changed).
    pub records: usize,
    /// Lines that are not records (one cut by a crash mid-write), left out.
    pub damaged: usize,
}

impl Reviews {
    pub fn apply(&mut self, record: &ReviewRecord) {
        self.records += 1;
        match record {
            ReviewRecord::Rating {
                job, rating, reviewer, ..
            } => {
                let clip = self.clips.entry(job.clone()).or_default();
                match rating {
                    Some(r) => clip.ratings.insert(reviewer.clone(), *r),
                    None => clip.ratings.remove(reviewer),
                };
            }
            ReviewRecord::Pick {
                job, picked, reviewer, ..
            } => {
                self.clips
                    .entry(job.clone())
                    .or_default()
                    .picks
                    .insert(reviewer.clone(), *picked);
            }
            ReviewRecord::Note {
                job, note, reviewer, ..
            } => {
                let clip = self.clips.entry(job.clone()).or_default();
                if note.trim().is_empty() {
                    clip.notes.remove(reviewer);
                } else {
                    clip.notes.insert(reviewer.clone(), note.clone());
                }
            }
            ReviewRecord::Vote {
                left,
                right,
                winner,
                reviewer,
                ..
            } => self.votes.push(Vote {
                left: left.clone(),
                right: right.clone(),
                winner: *winner,
                reviewer: reviewer.clone(),
            }),
        }
    }

    pub fn clip(&self, job: &str) -> Option<&ClipReview> {
        self.clips.get(job)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{path} is a symlink: kling-batch never writes through links inside a run folder")]
    Symlink { path: PathBuf },
}

/// Reads `reviews.jsonl` in `dir` (none yet: no reviews). A line that is not a record (cut by a
/// crash mid-write) is left out and counted.
pub fn read(dir: &Path) -> Result<Reviews, ReviewError> {
    let path = dir.join(REVIEWS);
    let text = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Reviews::default()),
        Err(source) => return Err(ReviewError::Read { path, source }),
    };
    let mut reviews = Reviews::default();
    for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        match serde_json::from_slice::<ReviewRecord>(line) {
            Ok(record) => reviews.apply(&record),
            Err(_) => reviews.damaged += 1,
        }
    }
    Ok(reviews)
}

/// The writer of `reviews.jsonl`: each append is one line, written whole and fsynced before it
/// returns. One writer per process (the app holds it behind a lock); lines from several
/// processes interleave whole, since each is one `write` to a file opened for appending.
#[derive(Debug)]
pub struct ReviewLog {
    file: std::fs::File,
    path: PathBuf,
}

impl ReviewLog {
    pub fn open(dir: &Path) -> Result<ReviewLog, ReviewError> {
        let path = dir.join(REVIEWS);
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(ReviewError::Symlink { path });
        }
        let failed = |source| ReviewError::Write {
            path: path.clone(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(failed)?;
        // A line cut by a crash is ended, so the next record starts a line of its own (and the cut
        // one is left out on reading). Nothing is truncated: another reviewer's app may be writing.
        let bytes = std::fs::read(&path).map_err(failed)?;
        if !bytes.is_empty() && !bytes.ends_with(b"\n") {
            (&file).write_all(b"\n").map_err(failed)?;
        }
        Ok(ReviewLog { file, path })
    }

    /// Appends `records` (one line each, in one write) and makes them durable. A last line cut
    /// since the file was opened — by any writer: this app's own write that hit a full disk, or
    /// another reviewer's — is ended first, so these records are never glued to it and lost.
    pub fn append(&mut self, records: &[ReviewRecord]) -> Result<(), ReviewError> {
        let mut text = Vec::new();
        if self.ends_cut().map_err(|source| ReviewError::Write {
            path: self.path.clone(),
            source,
        })? {
            text.push(b'\n');
        }
        for record in records {
            serde_json::to_writer(&mut text, record).map_err(|e| ReviewError::Write {
                path: self.path.clone(),
                source: std::io::Error::other(e),
            })?;
            text.push(b'\n');
        }
        let wrote = self.file.write_all(&text).and_then(|()| self.file.sync_data());
        wrote.map_err(|source| ReviewError::Write {
            path: self.path.clone(),
            source,
        })
    }

    /// Whether the file's last byte ends a line (an empty file does).
    fn ends_cut(&self) -> std::io::Result<bool> {
        use std::os::unix::fs::FileExt;
        let reader = std::fs::File::open(&self.path)?;
        let len = reader.metadata()?.len();
        if len == 0 {
            return Ok(false);
        }
        let mut last = [0u8; 1];
        reader.read_exact_at(&mut last, len - 1)?;
        Ok(last[0] != b'\n')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rating(job: &str, rating: Option<u8>, reviewer: &str) -> ReviewRecord {
        ReviewRecord::Rating {
            job: job.into(),
            rating,
            reviewer: reviewer.into(),
            at: "t".into(),
        }
    }

    #[test]
    fn the_latest_of_each_reviewer_counts_and_a_cut_line_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = ReviewLog::open(dir.path()).unwrap();
        log.append(&[
            rating("a", Some(2), "ann"),
            rating("a", Some(4), "ann"),
            rating("a", Some(5), "bob"),
        ])
        .unwrap();
        log.append(&[rating("b", Some(3), "ann"), rating("b", None, "ann")])
            .unwrap();
        drop(log);
        // A crash mid-write leaves half a line.
        let path = dir.path().join(REVIEWS);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(br#"{"type":"rating","job":"a","rat"#);
        std::fs::write(&path, &bytes).unwrap();
        let reviews = read(dir.path()).unwrap();
        assert_eq!(reviews.clip("a").unwrap().mean_rating(), Some(4.5));
        assert_eq!(reviews.clip("b").unwrap().mean_rating(), None);
        // The next writer ends the cut line first: what it writes is read back.
        let mut log = ReviewLog::open(dir.path()).unwrap();
        log.append(&[rating("b", Some(1), "cy")]).unwrap();
        let again = read(dir.path()).unwrap();
        assert_eq!(again.clip("b").unwrap().mean_rating(), Some(1.0));
        assert_eq!((again.records, again.damaged), (6, 1));
        // Nothing written was cut away (another reviewer's app may have been writing it).
        assert!(std::fs::read(&path).unwrap().starts_with(&bytes));
    }

    /// Two reviewers' apps run all along; one's note is cut (a full disk stops its write half
    /// way); the other's next rating is still a line of its own, read back.
    #[test]
    fn a_line_cut_while_another_app_runs_does_not_swallow_its_next_rating() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(REVIEWS);
        let mut ann = ReviewLog::open(dir.path()).unwrap();
        let mut bob = ReviewLog::open(dir.path()).unwrap();
        ann.append(&[rating("a", Some(2), "ann")]).unwrap();
        // What a write stopped by ENOSPC leaves: the start of ann's note.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(br#"{"type":"note","job":"a","text":"the li"#)
            .unwrap();
        bob.append(&[rating("a", Some(5), "bob")]).unwrap();
        ann.append(&[rating("b", Some(3), "ann")]).unwrap();
        let reviews = read(dir.path()).unwrap();
        assert_eq!(reviews.clip("a").unwrap().mean_rating(), Some(3.5), "bob's 5 is in");
        assert_eq!(reviews.clip("b").unwrap().mean_rating(), Some(3.0));
        assert_eq!((reviews.records, reviews.damaged), (3, 1));
    }
}
