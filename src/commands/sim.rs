//! `kling-batch sim`: the simulator as a standalone server, until Ctrl-C (or SIGTERM).

use crate::cli::SimArgs;
use crate::error::{CommandFailure, Exit};
use crate::sim::{self, DEFAULT_API_KEY, SimConfig};
use std::io::Write;
use std::net::SocketAddr;

pub(crate) fn run(args: SimArgs, stdout: &mut dyn Write, stderr: &mut dyn Write) -> Result<Exit, CommandFailure> {
    let mut config = match &args.faults {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => match SimConfig::from_yaml(&text) {
                Ok(c) => c,
                Err(e) => {
                    return Err(CommandFailure::new(Exit::Invalid, format!("{}: {e}", path.display()))
                        .hint("a profile takes the keys listed under `Simulator` in README.md"));
                }
            },
            Err(e) => {
                return Err(CommandFailure::new(
                    Exit::Invalid,
                    format!("cannot read {}: {e}", path.display()),
                ));
            }
        },
        None => SimConfig {
            time_scale: 1.0,
            ..SimConfig::default()
        },
    };
    let key_source = if let Some(key) = &args.api_key {
        config.api_key = key.clone();
        "--api-key"
    } else if let Some(key) = std::env::var("RUNAPI_API_KEY").ok().filter(|k| !k.is_empty()) {
        config.api_key = key;
        "RUNAPI_API_KEY"
    } else if config.api_key != DEFAULT_API_KEY {
        "the profile"
    } else {
        "the default"
    };
    if let Some(x) = args.time_scale {
        if !(x.is_finite() && (0.0..=1e6).contains(&x)) {
            return Err(CommandFailure::new(
                Exit::Usage,
                "--time-scale must be a number from 0 to 1000000 (0 stops the clock)",
            ));
        }
        config.time_scale = x;
    }
    config.seed = args.seed.unwrap_or(config.seed);
    config.balance_cents = args.balance_cents.unwrap_or(config.balance_cents);
    config.video_bytes = args.video_bytes.unwrap_or(config.video_bytes);
    config.separate_file_origin |= args.separate_file_origin;

    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            return Err(CommandFailure::new(
                Exit::Failure,
                format!("cannot start the async runtime: {e}"),
            ));
        }
    };
    runtime.block_on(async {
        let api = SocketAddr::from(([127, 0, 0, 1], args.port));
        let files = SocketAddr::from(([127, 0, 0, 1], args.file_port));
        let handle = match sim::server_start_on(config.clone(), api, Some(files)).await {
            Ok(h) => h,
            Err(e) => {
                return Err(
                    CommandFailure::new(Exit::Failure, format!("cannot listen on {api}: {e}"))
                        .hint("choose another --port, or --port 0 for a free one"),
                );
            }
        };
        let _ = writeln!(stdout, "{}", handle.base_url());
        let _ = stdout.flush();
        let key_note = if key_source == "the default" {
            format!("API key {DEFAULT_API_KEY} (the default)")
        } else {
            format!("API key from {key_source}")
        };
        let _ = writeln!(
            stderr,
            "RunAPI simulator at {} (videos at {}); {key_note}; time ×{}; Ctrl-C stops it",
            handle.base_url(),
            handle.file_base_url(),
            config.time_scale
        );
        wait_for_stop().await;
        handle.stop().await;
        let _ = writeln!(stderr, "simulator stopped");
        Ok(Exit::Success)
    })
}

async fn wait_for_stop() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
