//! From the command line to an exit code: parse the flags, set up logging, hand the command to
//! its file in `commands/`, and render what it failed with (`error`).

use crate::cli::{Cli, Command};
use crate::error::{CommandError, Exit, render_diagnostics};
use clap::Parser;
use std::ffi::OsString;
use std::io::Write;

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
    if let Err(e) = crate::util::logging::init(&cli) {
        let _ = writeln!(stderr, "error: {e}");
        return Exit::Usage;
    }
    let quiet = cli.quiet;
    let outcome = match cli.command {
        Command::Plan { manifest, json } => crate::commands::plan::plan(&manifest, json, stdout),
        Command::Validate { manifest } => crate::commands::plan::validate(&manifest, stdout),
        Command::Sim(args) => return crate::commands::sim::run(args, stdout, stderr),
        Command::Run(args) => return crate::commands::run::run(args, quiet, stderr),
        Command::Status { dir, json } => return crate::commands::status::run(&dir, json, stdout, stderr),
        Command::Report { dir, rows, columns } => {
            return crate::commands::report::run(&dir, rows.as_deref(), columns.as_deref(), stdout, stderr);
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
