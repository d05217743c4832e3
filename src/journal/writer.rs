//! The journal's one writer: a thread that appends records in the order they are sent and makes
//! them durable in groups with one fsync (group commit). Callers that must not act before a record
//! is on disk wait for its acknowledgement; the rest send and move on.
//!
//! Every group is written at once (a killed process loses nothing), but only a group that someone
//! waits for is fsynced at once; other writes are fsynced within `LAZY_SYNC`, by the next waited-for
//! group, or at the end. Only a submit intent must be on disk before its request goes out; a
//! `submitted`/`completed`/`downloaded` record lost to a power cut is learned again on resume (the
//! same idempotency key, a fresh status read, a file that fails verification is fetched again).

use super::record::Record;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::{Mutex, mpsc};
use std::thread::JoinHandle;
use tokio::sync::oneshot;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot write the journal: {message}")]
pub struct WriteError {
    pub message: String,
    pub disk_full: bool,
    /// A shared store refused a submit intent: the sweep's cap has no room for it.
    pub over_cap: bool,
    /// A shared store refused the record: this worker's claim on the job is stale (another
    /// worker claimed it since), so nothing it says about the job is taken.
    pub fenced: bool,
}

impl WriteError {
    fn from_io(e: &std::io::Error) -> WriteError {
        WriteError {
            message: e.to_string(),
            disk_full: e.raw_os_error() == Some(28),
            over_cap: false,
            fenced: false,
        }
    }
}

type Ack = oneshot::Sender<Result<(), WriteError>>;

struct Message {
    line: String,
    ack: Option<Ack>,
}

#[derive(Debug)]
pub struct JournalWriter {
    sender: Mutex<Option<mpsc::Sender<Message>>>,
    thread: Mutex<Option<JoinHandle<Result<(), WriteError>>>>,
}

/// Records written per group at most, so acknowledgements never wait long behind a flood.
const MAX_GROUP: usize = 4096;
/// Longest time written records wait for their fsync when nobody asks for one.
const LAZY_SYNC: std::time::Duration = std::time::Duration::from_millis(250);

impl JournalWriter {
    /// Opens `path` for appending after its first `valid_len` bytes (anything after, a torn line,
    /// is cut away).
    pub fn open(path: &Path, valid_len: u64) -> std::io::Result<JournalWriter> {
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(path)?;
        if file.metadata()?.len() != valid_len {
            file.set_len(valid_len)?;
            file.sync_data()?;
        }
        file.seek(SeekFrom::Start(valid_len))?;
        let (sender, receiver) = mpsc::channel::<Message>();
        let thread = std::thread::Builder::new()
            .name("journal".into())
            .spawn(move || write_loop(file, receiver))?;
        Ok(JournalWriter {
            sender: Mutex::new(Some(sender)),
            thread: Mutex::new(Some(thread)),
        })
    }

    fn send(&self, record: &Record, ack: Option<Ack>) -> bool {
        let line = record.to_line();
        self.sender
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|s| s.send(Message { line, ack }).is_ok())
    }

    /// Appends `record`; it becomes durable with the next group.
    pub fn append(&self, record: &Record) {
        self.send(record, None);
    }

    /// Appends `record` and waits until it is on disk.
    pub async fn append_durable(&self, record: &Record) -> Result<(), WriteError> {
        let (ack, done) = oneshot::channel();
        if !self.send(record, Some(ack)) {
            return Err(WriteError {
                message: "the journal writer has stopped".into(),
                disk_full: false,
                over_cap: false,
                fenced: false,
            });
        }
        done.await.unwrap_or_else(|_| {
            Err(WriteError {
                message: "the journal writer has stopped".into(),
                disk_full: false,
                over_cap: false,
                fenced: false,
            })
        })
    }

    /// Writes everything sent so far, fsyncs, and stops the writer; later appends are lost.
    pub fn close(&self) -> Result<(), WriteError> {
        self.sender.lock().unwrap_or_else(|e| e.into_inner()).take();
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        match thread.map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(WriteError {
                message: "the journal writer panicked".into(),
                disk_full: false,
                over_cap: false,
                fenced: false,
            }),
            None => Ok(()),
        }
    }
}

impl Drop for JournalWriter {
    fn drop(&mut self) {
        self.sender.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = thread.join();
        }
    }
}

fn write_loop(mut file: File, receiver: mpsc::Receiver<Message>) -> Result<(), WriteError> {
    let mut failure: Option<WriteError> = None;
    // Written but not yet fsynced.
    let mut unsynced = false;
    loop {
        let first = if unsynced {
            match receiver.recv_timeout(LAZY_SYNC) {
                Ok(m) => m,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Err(e) = file.sync_data() {
                        failure.get_or_insert_with(|| WriteError::from_io(&e));
                    }
                    unsynced = false;
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match receiver.recv() {
                Ok(m) => m,
                Err(_) => break,
            }
        };
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match receiver.try_recv() {
                Ok(m) => group.push(m),
                Err(_) => break,
            }
        }
        let result = match &failure {
            Some(e) => Err(e.clone()),
            None => {
                let mut buffer = String::with_capacity(group.iter().map(|m| m.line.len() + 1).sum());
                for m in &group {
                    buffer.push_str(&m.line);
                    buffer.push('\n');
                }
                crate::util::crash::point("journal.before_write");
                let waited_for = group.iter().any(|m| m.ack.is_some());
                let written = file.write_all(buffer.as_bytes());
                unsynced = written.is_ok() && !waited_for;
                written
                    .and_then(|()| if waited_for { file.sync_data() } else { Ok(()) })
                    .map_err(|e| WriteError::from_io(&e))
            }
        };
        if let Err(e) = &result {
            failure.get_or_insert_with(|| e.clone());
        }
        for m in group {
            if let Some(ack) = m.ack {
                let _ = ack.send(result.clone());
            }
        }
    }
    if unsynced
        && failure.is_none()
        && let Err(e) = file.sync_data()
    {
        failure = Some(WriteError::from_io(&e));
    }
    failure.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn appends_survive_and_a_torn_tail_is_cut_before_appending() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let a = Record::RunStarted {
            run_id: "r".into(),
            at: "t".into(),
            manifest: None,
            cap: None,
            settings: None,
        };
        let w = JournalWriter::open(&path, 0).unwrap();
        w.append(&a);
        w.append_durable(&a).await.unwrap();
        w.close().unwrap();
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{\"v\":1,\"t\":\"subm");
        std::fs::write(&path, &text).unwrap();
        let (records, recovery) = super::super::read(&path).unwrap();
        assert_eq!(records.len(), 2);
        let w = JournalWriter::open(&path, recovery.valid_len).unwrap();
        w.append(&a);
        w.close().unwrap();
        let (records, recovery) = super::super::read(&path).unwrap();
        assert_eq!((records.len(), recovery.torn_tail_bytes), (3, 0));
    }
}
