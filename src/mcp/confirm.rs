//! `kling-batch mcp confirm SWEEP --runs-dir DIR`: the human's own yes to a sweep an agent started
//! above the server's `--confirm-above`, given in a terminal the agent does not drive. It shows
//! what the sweep is — jobs, estimate, cap, manifest — asks, and starts the run exactly as the
//! server would have (the same approved plan, checked again). Without a yes nothing starts.

use super::sweeps::{Limits, Service, Sweeps};
use crate::cli::ConfirmArgs;
use crate::error::{CommandFailure, Exit};
use crate::util::money::Money;
use std::io::{BufRead, IsTerminal, Write};

pub(super) fn run(args: ConfirmArgs, stderr: &mut dyn Write) -> Result<Exit, CommandFailure> {
    let book = super::command::runs_folder(&args.runs_dir)?;
    let Some(record) = book.sweep(&args.sweep_id) else {
        return Err(CommandFailure::new(
            Exit::Invalid,
            format!("no sweep {} under {}", args.sweep_id, args.runs_dir.display()),
        )
        .hint("the sweep id is in the agent's start_sweep answer, or in list_sweeps"));
    };
    let exe = std::env::current_exe()
        .map_err(|e| CommandFailure::new(Exit::Failure, format!("cannot find this binary: {e}")))?;
    // Limits were checked when the agent started it; this only starts what was recorded.
    let cap = Money::from_micro_cents(record.cap);
    let limits = Limits {
        per_sweep: cap,
        total: cap,
        confirm_above: None,
    };
    let sweeps =
        Sweeps::new(book, limits, Service::Simulate, exe, None).map_err(|e| CommandFailure::new(Exit::Failure, e))?;
    let _ = writeln!(
        stderr,
        "sweep {}: {} job(s) of {}, estimated {}, cap {} ({}), approved {}",
        record.sweep_id,
        record.jobs,
        record.manifest,
        Money::from_micro_cents(record.estimate),
        cap,
        if record.simulate {
            "on the simulator"
        } else {
            "on RunAPI, paid"
        },
        record.started_at
    );
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            return Err(
                CommandFailure::new(Exit::Usage, "confirm asks on a terminal, and this is not one")
                    .hint("run it in a terminal, or add --yes once you have read what it starts"),
            );
        }
        let _ = write!(stderr, "start it? [y/N] ");
        let _ = stderr.flush();
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            let _ = writeln!(stderr, "not started");
            return Ok(Exit::Success);
        }
    }
    match sweeps.confirm(&record.sweep_id) {
        Ok(answer) => {
            let state = answer["state"].as_str().unwrap_or("");
            let _ = writeln!(
                stderr,
                "{}: {state}{}",
                record.sweep_id,
                answer["reason"].as_str().map_or(String::new(), |r| format!(" ({r})"))
            );
            Ok(if state == "running" || state == "finished" {
                Exit::Success
            } else {
                Exit::Failure
            })
        }
        Err(e) => Err(CommandFailure::new(Exit::Invalid, e.message).hint(e.hint)),
    }
}
