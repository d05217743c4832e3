//! `review --import FILE.csv`: ratings made elsewhere. Columns `job_id` and `rating` (1–5), and
//! optionally `picked` (true/false), `reviewer` and `note`. Every row is checked first; one bad
//! row refuses the whole file with its line, and nothing is imported.

use super::records::ReviewRecord;
use std::collections::HashSet;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {message}")]
    Read { path: String, message: String },
    #[error("{path}: the header has no `{column}` column")]
    MissingColumn { path: String, column: &'static str },
    #[error("{path}:{line}: {message}")]
    Row { path: String, line: u64, message: String },
}

impl ImportError {
    pub fn hint(&self) -> &'static str {
        match self {
            ImportError::Read { .. } => "give the path of a CSV file",
            ImportError::MissingColumn { .. } => {
                "the first line names the columns: job_id,rating and optionally picked,reviewer,note"
            }
            ImportError::Row { .. } => "fix that row (job ids are results.csv's job_id column); nothing was imported",
        }
    }
}

/// The records `path` holds, every row checked against the run's job ids. `reviewer` names rows
/// without a reviewer of their own.
pub fn read(path: &Path, jobs: &HashSet<&str>, reviewer: &str) -> Result<Vec<ReviewRecord>, ImportError> {
    let shown = path.display().to_string();
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_path(path)
        .map_err(|e| ImportError::Read {
            path: shown.clone(),
            message: e.to_string(),
        })?;
    let header = reader
        .headers()
        .map_err(|e| ImportError::Read {
            path: shown.clone(),
            message: e.to_string(),
        })?
        .clone();
    let column = |name: &str| header.iter().position(|h| h.trim().eq_ignore_ascii_case(name));
    let job_col = column("job_id").ok_or(ImportError::MissingColumn {
        path: shown.clone(),
        column: "job_id",
    })?;
    let rating_col = column("rating").ok_or(ImportError::MissingColumn {
        path: shown.clone(),
        column: "rating",
    })?;
    let (picked_col, reviewer_col, note_col) = (column("picked"), column("reviewer"), column("note"));
    let at = crate::util::time_format::now();
    let mut records = Vec::new();
    for row in reader.records() {
        let row = row.map_err(|e| ImportError::Row {
            path: shown.clone(),
            line: e.position().map_or(0, csv::Position::line),
            message: e.to_string(),
        })?;
        let line = row.position().map_or(0, csv::Position::line);
        let bad = |message: String| ImportError::Row {
            path: shown.clone(),
            line,
            message,
        };
        let cell = |i: Option<usize>| i.and_then(|i| row.get(i)).map(str::trim).unwrap_or("");
        let job = cell(Some(job_col));
        if !jobs.contains(job) {
            return Err(bad(format!("`{job}` is not a job of this run")));
        }
        let rating: u8 = match cell(Some(rating_col)).parse() {
            Ok(r) if (1..=5).contains(&r) => r,
            _ => {
                return Err(bad(format!(
                    "rating `{}` is not a whole number from 1 to 5",
                    cell(Some(rating_col))
                )));
            }
        };
        let picked = match cell(picked_col).to_ascii_lowercase().as_str() {
            "" => None,
            "true" | "yes" | "1" => Some(true),
            "false" | "no" | "0" => Some(false),
            other => return Err(bad(format!("picked `{other}` is not true or false"))),
        };
        let who = match cell(reviewer_col) {
            "" => reviewer.to_string(),
            name => name.to_string(),
        };
        records.push(ReviewRecord::Rating {
            job: job.to_string(),
            rating: Some(rating),
            reviewer: who.clone(),
            at: at.clone(),
        });
        if let Some(picked) = picked {
            records.push(ReviewRecord::Pick {
                job: job.to_string(),
                picked,
                reviewer: who.clone(),
                at: at.clone(),
            });
        }
        let note = cell(note_col);
        if !note.is_empty() {
            records.push(ReviewRecord::Note {
                job: job.to_string(),
                note: note.to_string(),
                reviewer: who,
                at: at.clone(),
            });
        }
    }
    Ok(records)
}
