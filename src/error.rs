//! The process exit codes, one per outcome a script may want to branch on. They follow the
//! official RunAPI CLI where the meanings match (2 auth, 3 credits, 4 validation, 5 timeout,
//! 7 task failed) and are listed in the README. Also the one place where a command's failure
//! becomes text: `error: …`, then a `hint: …` line that says what to type next.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// Everything asked for was done.
    Success = 0,
    /// An unexpected failure of the tool itself (I/O, a bug).
    Failure = 1,
    /// The API key is missing or was refused.
    Auth = 2,
    /// The account ran out of credits (HTTP 402).
    Credits = 3,
    /// The manifest (or another input) is invalid; nothing was spent.
    Invalid = 4,
    /// Some tasks outlived their deadline; a rerun re-attaches to them.
    TimedOut = 5,
    /// Some jobs failed; the others are done.
    JobsFailed = 7,
    /// The spend cap stopped submission; a rerun with a higher cap finishes the rest.
    SpendCap = 8,
    /// The command line itself is wrong.
    Usage = 64,
    /// Interrupted (Ctrl-C); a rerun resumes.
    Interrupted = 130,
}

impl Exit {
    pub fn code(self) -> u8 {
        self as u8
    }
}

use crate::manifest::{Diagnostic, ManifestError};
use std::io::Write;

/// What a command that reads files or writes output can fail with, besides its own exit codes.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Writes each diagnostic as `error: place: message` with its hints, at most 50 of them.
pub fn render_diagnostics(out: &mut dyn Write, diagnostics: &[Diagnostic]) {
    const SHOWN: usize = 50;
    for d in diagnostics.iter().take(SHOWN) {
        let _ = writeln!(out, "error: {d}");
    }
    if diagnostics.len() > SHOWN {
        let _ = writeln!(out, "… and {} more", diagnostics.len() - SHOWN);
    }
}
