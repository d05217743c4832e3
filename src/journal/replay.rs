//! Replay: the journal's records folded into where each job stands and what the spend ledger
//! holds. Pure and idempotent: a record seen twice changes nothing the second time.

use super::facts::JobFacts;
use super::record::Record;
use crate::util::money::Money;
use std::collections::HashMap;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Replayed {
    pub run_id: Option<String>,
    /// The manifest and cap of the latest run.
    pub manifest: Option<String>,
    pub cap: Option<Money>,
    /// The latest run's recorded settings (none for journals written before they were recorded).
    pub settings: Option<super::RecordedSettings>,
    pub jobs: HashMap<String, JobFacts>,
    /// Billed so far.
    pub spent: Money,
    /// Held for attempts whose outcome is not known yet.
    pub reserved: Money,
}

/// The run id inside an idempotency key (`kb1-<run id>-<job id>-a<n>`; run ids are 12 hex).
fn run_id_of_key(key: &str) -> Option<String> {
    let id = key.strip_prefix("kb1-")?.get(..12)?;
    id.bytes().all(|b| b.is_ascii_hexdigit()).then(|| id.to_string())
}

pub fn replay(records: &[Record]) -> Replayed {
    let mut out = Replayed::default();
    for record in records {
        out.apply(record);
    }
    out.finish();
    out
}

/// Reads the journal at `path` and replays it as it goes, never holding all its records.
pub fn read_replayed(path: &std::path::Path) -> Result<(Replayed, super::Recovery), super::JournalError> {
    let mut out = Replayed::default();
    let recovery = super::read_each(path, |record| out.apply(&record))?;
    out.finish();
    Ok((out, recovery))
}

impl Replayed {
    /// Folds one record in; `finish` once after the last.
    pub fn apply(&mut self, record: &Record) {
        let out = self;
        if let Record::RunStarted {
            run_id,
            manifest,
            cap,
            settings,
            ..
        } = record
        {
            out.run_id.get_or_insert_with(|| run_id.clone());
            out.manifest = manifest.clone().or(out.manifest.take());
            out.cap = cap.map(Money::from_micro_cents);
            out.settings = settings.clone().or(out.settings.take());
            return;
        }
        let Some(job) = record.job() else { return };
        if let Record::Submitting { key, .. } = record
            && out.run_id.is_none()
        {
            // The keys carry the run id: a journal whose first line was damaged keeps it.
            out.run_id = run_id_of_key(key);
        }
        match out.jobs.get_mut(job) {
            Some(facts) => facts.apply(record),
            None => out.jobs.entry(job.to_string()).or_default().apply(record),
        }
    }

    /// The ledger's totals, from every job's state.
    pub fn finish(&mut self) {
        self.spent = self.jobs.values().filter_map(|h| h.cost).sum();
        self.reserved = self.jobs.values().map(|h| h.reserved).sum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Phase;

    #[test]
    fn a_download_recorded_before_blake3_keeps_its_sha256() {
        let line = br#"{"at":"2026-11-21T19:02:48.881522Z","bytes":2979,"job":"a","path":"videos/a.mp4","sha256":"baa1b9394752b3ccbddb67b88db53141881198f38e3c8b16b6e51482324d8500","t":"downloaded","v":1}
{"at":"2026-11-22T10:00:00Z","bytes":5,"job":"b","path":"videos/b.mp4","checksum":"blake3:00ff","t":"downloaded","v":1}
"#;
        let (records, _) = crate::journal::reader::parse_bytes(line).unwrap();
        let history = replay(&records);
        assert_eq!(
            history.jobs["a"].video.as_ref().map(|v| v.checksum.as_str()),
            Some("sha256:baa1b9394752b3ccbddb67b88db53141881198f38e3c8b16b6e51482324d8500")
        );
        assert_eq!(
            history.jobs["b"].video.as_ref().map(|v| v.checksum.as_str()),
            Some("blake3:00ff")
        );
    }

    fn at() -> String {
        "t".into()
    }

    #[test]
    fn the_ledger_follows_reserve_settle_release() {
        let records = vec![
            Record::RunStarted {
                run_id: "r1".into(),
                at: at(),
                manifest: None,
                cap: None,
                settings: None,
            },
            Record::Submitting {
                job: "a".into(),
                attempt: 1,
                key: "k1".into(),
                reserve: 70,
                body: None,
                send_until: None,
                at: at(),
            },
            Record::Submitting {
                job: "b".into(),
                attempt: 1,
                key: "k2".into(),
                reserve: 50,
                body: None,
                send_until: None,
                at: at(),
            },
            Record::Submitted {
                job: "a".into(),
                attempt: 1,
                task_id: "t1".into(),
                at: at(),
            },
            Record::Completed {
                job: "a".into(),
                task_id: "t1".into(),
                url: "u".into(),
                cost: 60,
                at: at(),
            },
            Record::Submitted {
                job: "b".into(),
                attempt: 1,
                task_id: "t2".into(),
                at: at(),
            },
            Record::AttemptFailed {
                job: "b".into(),
                attempt: 1,
                task_id: "t2".into(),
                message: "no".into(),
                at: at(),
            },
        ];
        let r = replay(&records);
        assert_eq!(r.run_id.as_deref(), Some("r1"));
        assert_eq!((r.spent.micro_cents(), r.reserved.micro_cents()), (60, 0));
        assert_eq!(r.jobs["a"].phase, Some(Phase::Completed));
        assert_eq!(r.jobs["b"].phase, Some(Phase::Waiting));
        assert_eq!(r.jobs["b"].task_id, None);
    }

    #[test]
    fn replay_is_idempotent() {
        let records = vec![
            Record::Submitting {
                job: "a".into(),
                attempt: 1,
                key: "k1".into(),
                reserve: 70,
                body: None,
                send_until: None,
                at: at(),
            },
            Record::Submitted {
                job: "a".into(),
                attempt: 1,
                task_id: "t1".into(),
                at: at(),
            },
            Record::Completed {
                job: "a".into(),
                task_id: "t1".into(),
                url: "u".into(),
                cost: 70,
                at: at(),
            },
            Record::Downloaded {
                job: "a".into(),
                path: "videos/a.mp4".into(),
                bytes: 3,
                checksum: "blake3:00".into(),
                at: at(),
            },
        ];
        let once = replay(&records);
        let twice = replay(&[records.clone(), records].concat());
        assert_eq!(once, twice);
        assert_eq!(once.jobs["a"].phase, Some(Phase::Downloaded));
    }
}
