//! Stderr shared by the live progress display and everything else that writes to the terminal
//! (log lines, Ctrl-C notices): a line is written around the display, never over it. The display
//! registers itself here; this module knows nothing of what it shows.

use indicatif::ProgressBar;
use std::io::Write;
use std::sync::Mutex;

static BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// The live display now on the terminal (none: plain stderr).
pub fn set_display(bar: Option<ProgressBar>) {
    *BAR.lock().unwrap_or_else(|e| e.into_inner()) = bar;
}

/// Prints a line on stderr without garbling the live display.
pub fn print_line(line: &str) {
    write_stderr(format!("{line}\n").as_bytes());
}

/// Writes to stderr around the live display, if there is one.
pub fn write_stderr(bytes: &[u8]) {
    let bar = BAR.lock().unwrap_or_else(|e| e.into_inner()).clone();
    match bar {
        Some(bar) => bar.suspend(|| {
            let _ = std::io::stderr().write_all(bytes);
        }),
        None => {
            let _ = std::io::stderr().write_all(bytes);
        }
    }
}
