//! From the command line to an exit code: parse the flags, set up logging, hand the command to
//! its file in `commands/`, and render what it failed with (`error`).

use crate::cli::{Cli, Command};
use crate::error::{CommandFailure, Exit};
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
        return CommandFailure::new(Exit::Usage, e).render(stderr);
    }
    let quiet = cli.quiet;
    let outcome: Result<Exit, CommandFailure> = match cli.command {
        Command::Plan {
            manifest,
            json,
            max_input_bytes,
            out,
        } => crate::commands::plan::plan(&manifest, json, max_input_bytes, out.as_deref(), stdout, stderr),
        Command::Validate {
            manifest,
            max_input_bytes,
        } => crate::commands::plan::validate(&manifest, max_input_bytes, stdout).map_err(Into::into),
        Command::Sim(args) => crate::commands::sim::run(args, stdout, stderr),
        Command::Review(args) => crate::commands::review::run(args, stdout, stderr),
        Command::Mcp(args) => crate::mcp::run(args, stderr),
        Command::Run(args) => crate::commands::run::run(*args, quiet, cli.log_file.as_deref(), stderr),
        Command::Status {
            dir,
            json,
            state,
            run_name,
        } => crate::commands::status::run(&dir, json, state, run_name.as_deref(), stdout),
        Command::Report {
            dir,
            rows,
            columns,
            state,
            run_name,
        } => crate::commands::report::run(
            &dir,
            rows.as_deref(),
            columns.as_deref(),
            state,
            run_name.as_deref(),
            stdout,
        ),
    };
    match outcome {
        Ok(exit) => exit,
        // The reader went away (`plan --json | head`): nothing is wrong, stop quietly, as
        // ripgrep and other command-line tools do.
        Err(failure) if failure.broken_pipe => Exit::Success,
        Err(failure) => failure.render(stderr),
    }
}
