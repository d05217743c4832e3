//! Ctrl-C escalation (and SIGTERM): the first press stops submitting, the second abandons the
//! work in flight, the third exits at once. The run reads presses from a channel, so a test can
//! hand it `none()`, a source that never signals.

use crate::error::Exit;
use tokio::sync::mpsc::UnboundedReceiver;

/// Ctrl-C (and SIGTERM) presses, counted: the first stops submitting, the second abandons the
/// work in flight, the third exits at once.
/// The handlers are in place when it returns (not once its task first runs), so a press at any
/// moment after is counted — never the default action that ends the process mid-step.
pub fn listen() -> tokio::sync::mpsc::UnboundedReceiver<u8> {
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    #[cfg(unix)]
    let (mut interrupt, mut term) = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::interrupt()).ok(),
            signal(SignalKind::terminate()).ok(),
        )
    };
    tokio::spawn(async move {
        let mut presses = 0u8;
        loop {
            #[cfg(unix)]
            let got = match (interrupt.as_mut(), term.as_mut()) {
                (Some(i), Some(t)) => tokio::select! { r = i.recv() => r.is_some(), r = t.recv() => r.is_some() },
                (Some(i), None) => i.recv().await.is_some(),
                (None, Some(t)) => t.recv().await.is_some(),
                (None, None) => tokio::signal::ctrl_c().await.is_ok(),
            };
            #[cfg(not(unix))]
            let got = tokio::signal::ctrl_c().await.is_ok();
            if !got {
                return;
            }
            presses = presses.saturating_add(1);
            match presses {
                1 => crate::util::console::print_line(
                    "interrupted: no new submissions; finishing what is in flight (Ctrl-C again to stop now)",
                ),
                2 => crate::util::console::print_line(
                    "stopping now: the journal holds every task id, a rerun picks them up (Ctrl-C again to exit at once)",
                ),
                // The third press: the user wants out now, whatever is running (the journal already
                // holds every task id and key).
                #[allow(clippy::exit)]
                _ => std::process::exit(i32::from(Exit::Interrupted.code())),
            }
            if sender.send(presses).is_err() {
                return;
            }
        }
    });
    receiver
}

/// A source that never signals (its sender is gone): for runs driven by tests.
pub fn none() -> UnboundedReceiver<u8> {
    tokio::sync::mpsc::unbounded_channel().1
}
