//! Logging: tracing to stderr (or `--log-file`), as text or JSON. `-v`/`-q` set this crate's
//! level; `RUST_LOG` (`target=level,…`) decides instead when set. Nothing logged here carries the
//! API key or a signed URL's query: requests are logged by method and path, downloads by host and
//! path (`redact_url`).

use crate::cli::{Cli, LogFormat};
use std::str::FromStr;
use std::sync::Mutex;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Sets up logging for this process; an unusable `--log-file` is an error.
pub fn init(cli: &Cli) -> Result<(), String> {
    let own = match (cli.quiet, cli.verbose) {
        (true, _) => LevelFilter::ERROR,
        (false, 0) => LevelFilter::WARN,
        (false, 1) => LevelFilter::INFO,
        (false, 2) => LevelFilter::DEBUG,
        (false, _) => LevelFilter::TRACE,
    };
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .and_then(|v| Targets::from_str(&v).ok())
        .unwrap_or_else(|| {
            Targets::new()
                .with_target("kling_batch", own)
                .with_default(LevelFilter::WARN)
        });
    let writer: Box<dyn Fn() -> Box<dyn std::io::Write> + Send + Sync> = match &cli.log_file {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("cannot open the log file {}: {e}", path.display()))?;
            let file = std::sync::Arc::new(Mutex::new(file));
            Box::new(move || Box::new(SharedFile(std::sync::Arc::clone(&file))) as Box<dyn std::io::Write>)
        }
        None => Box::new(|| Box::new(ThroughProgress) as Box<dyn std::io::Write>),
    };
    let make_writer = move || writer();
    let result = match cli.log_format {
        LogFormat::Json => tracing_subscriber::registry()
            .with(tracing_subscriber::fmt::layer().json().with_writer(make_writer))
            .with(filter)
            .try_init(),
        LogFormat::Text => tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(make_writer),
            )
            .with(filter)
            .try_init(),
    };
    result.map_err(|e| e.to_string())
}

/// Stderr, written around the live progress display so log lines never garble it.
struct ThroughProgress;

impl std::io::Write for ThroughProgress {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        crate::util::console::write_stderr(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct SharedFile(std::sync::Arc<Mutex<std::fs::File>>);

impl std::io::Write for SharedFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).flush()
    }
}

/// A URL fit for a log line: scheme, host and path, without a user name or password, the query
/// or the fragment (signatures and credentials live there).
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            if !parsed.username().is_empty() || parsed.password().is_some() {
                let _ = parsed.set_username("***");
                let _ = parsed.set_password(None);
            }
            parsed.set_query(None);
            parsed.set_fragment(None);
            parsed.to_string()
        }
        Err(_) => "(an unreadable URL)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_in_logs_keep_no_secret() {
        assert_eq!(
            super::redact_url("https://user:pa55@cdn.example/v/a.mp4?sig=abc#t=1"),
            "https://***@cdn.example/v/a.mp4"
        );
        assert_eq!(
            super::redact_url("http://127.0.0.1:9/f.mp4?x=1"),
            "http://127.0.0.1:9/f.mp4"
        );
        assert_eq!(super::redact_url("not a url sk-secret"), "(an unreadable URL)");
    }
}
