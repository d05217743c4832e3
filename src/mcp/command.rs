//! The `kling-batch mcp` command: checks the human's limits, opens the runs folder, and serves the
//! tools over stdio (what Hermes Agent and OpenClaw start) or, with `--listen`, streamable HTTP at
//! `/mcp` — on loopback by default; anywhere else every request needs the bearer token it prints.

use super::book::Book;
use super::server::KlingBatchMcp;
use super::sweeps::{Limits, Service, Sweeps};
use crate::cli::{McpArgs, McpCommand};
use crate::error::{CommandFailure, Exit};
use crate::util::money::Money;
use std::io::Write;
use std::sync::Arc;

fn usage(message: impl std::fmt::Display, hint: &str) -> CommandFailure {
    CommandFailure::new(Exit::Usage, message).hint(hint)
}

pub(super) fn runs_folder(dir: &std::path::Path) -> Result<Book, CommandFailure> {
    if !dir.is_dir() {
        return Err(
            CommandFailure::new(Exit::Invalid, format!("--runs-dir {} is not a folder", dir.display()))
                .hint("make the folder the sweeps will live in, e.g. mkdir -p ~/kling-runs"),
        );
    }
    Book::open(dir).map_err(|e| CommandFailure::new(Exit::Failure, e))
}

pub(crate) fn run(args: McpArgs, stderr: &mut dyn Write) -> Result<Exit, CommandFailure> {
    if let Some(McpCommand::Confirm(confirm)) = args.command {
        return super::confirm::run(confirm, stderr);
    }
    let dollars = |flag: &str, v: Option<f64>| {
        v.and_then(Money::from_usd_f64)
            .filter(|m| *m > Money::ZERO)
            .ok_or_else(|| {
                usage(
                    format!("{flag} must be a number of US dollars above 0"),
                    "for example --max-spend-per-sweep 25",
                )
            })
    };
    let limits = Limits {
        per_sweep: dollars("--max-spend-per-sweep", args.max_spend_per_sweep)?,
        total: dollars("--max-spend-total", args.max_spend_total)?,
        confirm_above: match args.confirm_above {
            None => None,
            Some(v) => Some(Money::from_usd_f64(v).ok_or_else(|| {
                usage(
                    "--confirm-above must be a number of US dollars",
                    "for example --confirm-above 5",
                )
            })?),
        },
    };
    let book = runs_folder(args.runs_dir.as_deref().unwrap_or(std::path::Path::new("")))?;
    let service = if args.simulate {
        Service::Simulate
    } else {
        Service::Api(args.api_base.clone())
    };
    // The key, when there is one: never in a result (sweeps read it from the environment
    // themselves); the server uses it for price quotes only.
    let credentials = if args.simulate {
        None
    } else {
        match crate::client::credentials::resolve(&crate::client::credentials::ProcessEnv, args.api_base.as_deref()) {
            Ok(c) => Some(c),
            Err(e) => return Err(CommandFailure::new(Exit::Auth, &e).hint(e.hint())),
        }
    };
    let exe = std::env::current_exe()
        .map_err(|e| CommandFailure::new(Exit::Failure, format!("cannot find this binary: {e}")))?;
    let sweeps =
        Sweeps::new(book, limits, service, exe, credentials).map_err(|e| CommandFailure::new(Exit::Failure, e))?;
    let server = KlingBatchMcp::new(Arc::new(sweeps));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CommandFailure::new(Exit::Failure, format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async move {
        match args.listen {
            None => serve_stdio(server).await,
            Some(addr) => serve_http(server, addr, args.token.clone(), stderr).await,
        }
    })
}

async fn serve_stdio(server: KlingBatchMcp) -> Result<Exit, CommandFailure> {
    use rmcp::ServiceExt;
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| CommandFailure::new(Exit::Failure, format!("the MCP session did not start: {e}")))?;
    running
        .waiting()
        .await
        .map_err(|e| CommandFailure::new(Exit::Failure, format!("the MCP session ended: {e}")))?;
    Ok(Exit::Success)
}

async fn serve_http(
    server: KlingBatchMcp,
    addr: std::net::SocketAddr,
    token: Option<String>,
    stderr: &mut dyn Write,
) -> Result<Exit, CommandFailure> {
    use rmcp::transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
    };
    let public = !addr.ip().is_loopback();
    let token = match (public, token) {
        (_, Some(t)) if t.len() >= 16 => Some(t),
        (_, Some(_)) => {
            return Err(usage(
                "--token must be at least 16 characters",
                "or leave it out: one is made and printed",
            ));
        }
        (true, None) => Some(random_token()),
        (false, None) => None,
    };
    let service = StreamableHttpService::new(
        move || Ok(server.clone()),
        LocalSessionManager::default().into(),
        StreamableHttpServerConfig::default(),
    );
    let expected = token.clone();
    let router = axum::Router::new()
        .nest_service("/mcp", service)
        .layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                let expected = expected.clone();
                async move {
                    // On loopback, only requests addressed to loopback (DNS rebinding is refused).
                    let host = request
                        .headers()
                        .get(axum::http::header::HOST)
                        .and_then(|v| v.to_str().ok());
                    if !public && !crate::util::net::loopback_host(host) {
                        return axum::response::IntoResponse::into_response((
                            axum::http::StatusCode::FORBIDDEN,
                            "this MCP server answers requests addressed to loopback only",
                        ));
                    }
                    if let Some(t) = expected {
                        let given = request
                            .headers()
                            .get(axum::http::header::AUTHORIZATION)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.strip_prefix("Bearer "));
                        let same = given.is_some_and(|g| {
                            g.len() == t.len() && g.bytes().zip(t.bytes()).fold(0u8, |a, (x, y)| a | (x ^ y)) == 0
                        });
                        if !same {
                            return axum::response::IntoResponse::into_response((
                                axum::http::StatusCode::UNAUTHORIZED,
                                "this MCP server needs its bearer token (Authorization: Bearer …)",
                            ));
                        }
                    }
                    // Closing a session: the SDKs expect 200 (or 204); rmcp answers 202.
                    let closing = request.method() == axum::http::Method::DELETE;
                    let mut response = next.run(request).await;
                    if closing && response.status() == axum::http::StatusCode::ACCEPTED {
                        *response.status_mut() = axum::http::StatusCode::OK;
                    }
                    response
                }
            },
        ));
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        usage(
            format!("cannot listen on {addr}: {e}"),
            "give --listen another address or port",
        )
    })?;
    let bound = listener
        .local_addr()
        .map_err(|e| CommandFailure::new(Exit::Failure, e.to_string()))?;
    let _ = writeln!(stderr, "MCP over streamable HTTP at http://{bound}/mcp");
    if let Some(t) = &token {
        let _ = writeln!(stderr, "bearer token: {t}");
    }
    let _ = stderr.flush();
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| CommandFailure::new(Exit::Failure, format!("the MCP server stopped: {e}")))?;
    Ok(Exit::Success)
}

fn random_token() -> String {
    let mut bytes = [0u8; 24];
    let _ = std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
    crate::util::hex::hex(&bytes)
}
