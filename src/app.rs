//! The commands: each takes parsed flags, calls the library, writes what the user sees, and
//! returns the exit code. The one place where errors become text.

use crate::cli::{Cli, Command};
use crate::exit::Exit;
use crate::manifest::{self, Diagnostic, ManifestError};
use crate::plan::{self, Plan};
use crate::report;
use clap::Parser;
use std::ffi::OsString;
use std::io::Write;
use std::path::Path;

/// Runs the command line `args`, writing to `stdout` and `stderr`.
pub fn main_with<I, T>(args: I, stdout: &mut dyn Write, stderr: &mut dyn Write) -> Exit
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let exit = if e.use_stderr() { Exit::Usage } else { Exit::Success };
            let text = e.render().to_string();
            let _ = if e.use_stderr() {
                write!(stderr, "{text}")
            } else {
                write!(stdout, "{text}")
            };
            return exit;
        }
    };
    if let Err(e) = crate::logging::init(&cli) {
        let _ = writeln!(stderr, "error: {e}");
        return Exit::Usage;
    }
    let quiet = cli.quiet;
    let outcome = match cli.command {
        Command::Plan { manifest, json } => plan_command(&manifest, json, stdout),
        Command::Validate { manifest } => validate_command(&manifest, stdout),
        Command::Sim(args) => return crate::sim_command::run(args, stdout, stderr),
        Command::Run(args) => return crate::run_command::run(args, quiet, stderr),
        Command::Status { dir, json } => return crate::status_command::run(&dir, json, stdout, stderr),
        Command::Report { dir, rows, columns } => {
            return crate::status_command::report(&dir, rows.as_deref(), columns.as_deref(), stdout, stderr);
        }
    };
    match outcome {
        Ok(exit) => exit,
        Err(CommandError::Manifest(e)) => {
            render_diagnostics(stderr, &e.diagnostics);
            let _ = writeln!(stderr, "error: {e}; nothing was submitted");
            Exit::Invalid
        }
        // The reader went away (`plan --json | head`): nothing is wrong, stop quietly, as
        // ripgrep and other command-line tools do.
        Err(CommandError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Exit::Success,
        Err(CommandError::Io(e)) => {
            let _ = writeln!(stderr, "error: cannot write output: {e}");
            Exit::Failure
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum CommandError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Loads and expands a manifest: the shared first step of every command that reads one. Problems
/// from reading and from expansion are reported together, in file order.
pub fn load_plan(path: &Path) -> Result<Plan, ManifestError> {
    let loaded = manifest::read(path)?;
    let mut diagnostics = loaded.problems;
    match plan::expand(&loaded.manifest) {
        Ok(plan) if diagnostics.is_empty() => return Ok(plan),
        Ok(_) => {}
        Err(more) => {
            // A place already reported while reading explains whatever expansion says of it.
            let known: Vec<_> = diagnostics.iter().map(|d| d.place.clone()).collect();
            diagnostics.extend(more.into_iter().filter(|d| !known.contains(&d.place)));
        }
    }
    diagnostics.sort_by(|a, b| {
        (&a.place.file, a.place.line, a.place.column).cmp(&(&b.place.file, b.place.line, b.place.column))
    });
    Err(ManifestError { diagnostics })
}

fn plan_command(path: &Path, json: bool, out: &mut dyn Write) -> Result<Exit, CommandError> {
    let plan = load_plan(path)?;
    if json {
        report::write_plan_json(&plan, &mut *out)?;
        writeln!(out)?;
    } else {
        out.write_all(report::plan_table(&plan).as_bytes())?;
    }
    Ok(Exit::Success)
}

fn validate_command(path: &Path, out: &mut dyn Write) -> Result<Exit, CommandError> {
    let plan = load_plan(path)?;
    let total: crate::money::Money = plan.jobs.iter().map(|j| j.estimate.cost).sum();
    writeln!(
        out,
        "{}: valid — {} job{}, estimated {total}",
        path.display(),
        plan.jobs.len(),
        if plan.jobs.len() == 1 { "" } else { "s" }
    )?;
    Ok(Exit::Success)
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
