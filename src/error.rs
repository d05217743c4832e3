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
    pub const ALL: [Exit; 10] = [
        Exit::Success,
        Exit::Failure,
        Exit::Auth,
        Exit::Credits,
        Exit::Invalid,
        Exit::TimedOut,
        Exit::JobsFailed,
        Exit::SpendCap,
        Exit::Usage,
        Exit::Interrupted,
    ];

    pub fn code(self) -> u8 {
        self as u8
    }

    /// The exit a process's status code names, if it is one of ours.
    pub fn from_code(code: i64) -> Option<Exit> {
        Exit::ALL.into_iter().find(|e| i64::from(e.code()) == code)
    }
}

use crate::manifest::{Diagnostic, ManifestError};
use std::io::Write;

/// A command's failure, as the one renderer prints it: `error: …`, then each `caused by: …`, then
/// `hint: …` lines that say what to type next, and its exit code.
#[derive(Debug)]
pub struct CommandFailure {
    pub exit: Exit,
    pub message: String,
    pub causes: Vec<String>,
    pub hints: Vec<String>,
    /// Manifest problems, each with its place, shown before the message.
    pub diagnostics: Vec<Diagnostic>,
    /// Output went to a reader that has gone away: not worth a word.
    pub broken_pipe: bool,
}

impl CommandFailure {
    pub fn new(exit: Exit, message: impl std::fmt::Display) -> CommandFailure {
        CommandFailure {
            exit,
            message: message.to_string(),
            causes: Vec::new(),
            hints: Vec::new(),
            diagnostics: Vec::new(),
            broken_pipe: false,
        }
    }

    /// Adds a hint; an empty one is left out.
    pub fn hint(mut self, hint: impl Into<String>) -> CommandFailure {
        let hint = hint.into();
        if !hint.is_empty() {
            self.hints.push(hint);
        }
        self
    }

    pub fn caused_by(mut self, cause: impl std::fmt::Display) -> CommandFailure {
        self.causes.push(cause.to_string());
        self
    }

    /// Writes the failure and returns its exit code.
    pub fn render(&self, out: &mut dyn Write) -> Exit {
        render_diagnostics(out, &self.diagnostics);
        let _ = writeln!(out, "error: {}", self.message);
        for cause in &self.causes {
            let _ = writeln!(out, "  caused by: {cause}");
        }
        for hint in &self.hints {
            let _ = writeln!(out, "  hint: {hint}");
        }
        self.exit
    }
}

impl From<CommandError> for CommandFailure {
    fn from(error: CommandError) -> CommandFailure {
        match error {
            CommandError::Manifest(e) => CommandFailure {
                diagnostics: e.diagnostics.clone(),
                ..CommandFailure::new(Exit::Invalid, format!("{e}; nothing was submitted"))
            },
            CommandError::Io(e) => CommandFailure {
                broken_pipe: e.kind() == std::io::ErrorKind::BrokenPipe,
                ..CommandFailure::new(Exit::Failure, format!("cannot write output: {e}"))
            },
        }
    }
}

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
