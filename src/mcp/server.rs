//! The MCP tools, on the official Rust SDK (`rmcp`): each answers within seconds with
//! `structuredContent` and a one-line text summary before the JSON, for clients that read text
//! only. A refusal is a tool result marked as an error, with a code, a message and a hint the
//! model can act on; every result has the API key masked, whatever a manifest or the service said.

use super::sweeps::{Source, Sweeps, ToolError};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::{ErrorData as McpError, ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ManifestInput {
    /// The manifest's YAML text (give this or manifest_path).
    pub manifest_yaml: Option<String>,
    /// A manifest file inside the server's runs folder.
    pub manifest_path: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct StartInput {
    /// The manifest's YAML text (give this or manifest_path): the one plan_sweep approved.
    pub manifest_yaml: Option<String>,
    /// A manifest file inside the server's runs folder.
    pub manifest_path: Option<String>,
    /// A folder name for the sweep inside the runs folder (default: made from the manifest).
    pub out: Option<String>,
    /// The sweep's spend cap in US dollars: it never spends more. At most the server's limit.
    pub max_spend_usd: f64,
    /// The `approval` plan_sweep returned for this manifest, once the human approved its cost.
    pub approval: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct SweepInput {
    /// The sweep_id start_sweep returned (list_sweeps shows them all).
    pub sweep_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ResultsInput {
    pub sweep_id: String,
    /// Only rows with this status (completed, failed, not_started, …).
    pub status: Option<String>,
    /// Rows per page (default 50, at most 500).
    pub limit: Option<usize>,
    /// Rows to skip.
    pub offset: Option<usize>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ResumeInput {
    pub sweep_id: String,
    /// Not needed: a resume keeps the sweep's approved cap.
    pub approval: Option<String>,
}

#[derive(Clone)]
pub struct KlingBatchMcp {
    sweeps: Arc<Sweeps>,
    tool_router: ToolRouter<Self>,
}

impl KlingBatchMcp {
    pub fn new(sweeps: Arc<Sweeps>) -> KlingBatchMcp {
        KlingBatchMcp {
            sweeps,
            tool_router: Self::tool_router(),
        }
    }

    /// Runs `work` off the async threads and makes its answer a tool result.
    async fn answer(
        &self,
        summary: fn(&Value) -> String,
        work: impl FnOnce(&Sweeps) -> Result<Value, ToolError> + Send + 'static,
    ) -> Result<CallToolResult, McpError> {
        let sweeps = Arc::clone(&self.sweeps);
        let done = tokio::task::spawn_blocking(move || {
            let out = work(&sweeps);
            match out {
                Ok(v) => (sweeps.scrub(v), false),
                Err(e) => (sweeps.scrub(e.to_json()), true),
            }
        })
        .await
        .map_err(|e| McpError::internal_error(e.to_string(), None))?;
        let (value, failed) = done;
        let text = if failed {
            format!(
                "refused: {} ({})",
                value["message"].as_str().unwrap_or(""),
                value["hint"].as_str().unwrap_or("")
            )
        } else {
            summary(&value)
        };
        let mut result = if failed {
            CallToolResult::structured_error(value.clone())
        } else {
            CallToolResult::structured(value.clone())
        };
        result.content = vec![ContentBlock::text(format!("{text}\n{value}"))];
        Ok(result)
    }
}

fn source(yaml: Option<String>, path: Option<String>) -> Result<Source, ToolError> {
    match (yaml, path) {
        (Some(y), None) => Ok(Source::Yaml(y)),
        (None, Some(p)) => Ok(Source::Path(p)),
        _ => Err(ToolError {
            code: "bad_input",
            message: "give the manifest as exactly one of manifest_yaml or manifest_path".into(),
            hint: "manifest_yaml: the YAML text; manifest_path: a file inside the runs folder".into(),
        }),
    }
}

#[tool_router]
impl KlingBatchMcp {
    #[tool(
        description = "Check a kling-batch manifest (YAML) against the Kling request contract. Returns every problem with its line, column and hints. Spends nothing."
    )]
    async fn validate_manifest(&self, Parameters(p): Parameters<ManifestInput>) -> Result<CallToolResult, McpError> {
        self.answer(
            |v| match v["valid"].as_bool() {
                Some(true) => format!(
                    "valid: {} jobs, estimated ${:.2}",
                    v["jobs"],
                    v["estimate_usd"].as_f64().unwrap_or(0.0)
                ),
                _ => format!("{} problem(s)", v["problems"].as_array().map_or(0, Vec::len)),
            },
            move |s| s.validate(&source(p.manifest_yaml, p.manifest_path)?),
        )
        .await
    }

    #[tool(
        description = "Plan a sweep: its jobs, the estimated cost by model, and an `approval` token bound to this exact plan and estimate (it expires in an hour). Show the human the estimate and get their approval before calling start_sweep with the token. Spends nothing."
    )]
    async fn plan_sweep(&self, Parameters(p): Parameters<ManifestInput>) -> Result<CallToolResult, McpError> {
        self.answer(
            |v| {
                format!(
                    "{} jobs, estimated ${:.2}: ask the human to approve before start_sweep",
                    v["jobs"],
                    v["estimate_usd"].as_f64().unwrap_or(0.0)
                )
            },
            move |s| s.plan(&source(p.manifest_yaml, p.manifest_path)?),
        )
        .await
    }

    #[tool(
        description = "Start an approved sweep with a spend cap (max_spend_usd). Needs the approval plan_sweep returned for this same manifest. Returns a sweep_id at once; the sweep runs on its own (it outlives this session) — follow it with sweep_status."
    )]
    async fn start_sweep(&self, Parameters(p): Parameters<StartInput>) -> Result<CallToolResult, McpError> {
        self.answer(
            |v| {
                format!(
                    "started {} (cap ${:.2})",
                    v["sweep_id"].as_str().unwrap_or(""),
                    v["max_spend_usd"].as_f64().unwrap_or(0.0)
                )
            },
            move |s| {
                let src = source(p.manifest_yaml, p.manifest_path)?;
                s.start(&src, p.out.as_deref(), p.max_spend_usd, &p.approval)
            },
        )
        .await
    }

    #[tool(
        description = "Where a sweep stands: state (running, finished, stopped, failed, interrupted), jobs, completed, failed, in flight, spend against its cap, an ETA and what a resume would do."
    )]
    async fn sweep_status(&self, Parameters(p): Parameters<SweepInput>) -> Result<CallToolResult, McpError> {
        self.answer(
            |v| {
                format!(
                    "{}: {}, {}/{} completed, ${:.2} spent",
                    v["sweep_id"].as_str().unwrap_or(""),
                    v["state"].as_str().unwrap_or(""),
                    v["completed"],
                    v["jobs"],
                    v["spent_usd"].as_f64().unwrap_or(0.0)
                )
            },
            move |s| s.status(&p.sweep_id),
        )
        .await
    }

    #[tool(
        description = "A sweep's jobs, paged: each with its prompt, parameters, status, video file, cost and task id."
    )]
    async fn sweep_results(&self, Parameters(p): Parameters<ResultsInput>) -> Result<CallToolResult, McpError> {
        self.answer(
            |v| format!("{} row(s) of {}", v["rows"].as_array().map_or(0, Vec::len), v["total"]),
            move |s| {
                s.results(
                    &p.sweep_id,
                    p.status.as_deref(),
                    p.limit.unwrap_or(50).min(500),
                    p.offset.unwrap_or(0),
                )
            },
        )
        .await
    }

    #[tool(
        description = "Stop a running sweep gracefully (what Ctrl-C does): work in flight finishes and is saved; resume_sweep goes on later."
    )]
    async fn stop_sweep(&self, Parameters(p): Parameters<SweepInput>) -> Result<CallToolResult, McpError> {
        self.answer(|v| format!("stopping: {}", v["stopping"]), move |s| s.stop(&p.sweep_id))
            .await
    }

    #[tool(description = "Resume an interrupted or stopped sweep within its approved cap. Nothing is paid twice.")]
    async fn resume_sweep(&self, Parameters(p): Parameters<ResumeInput>) -> Result<CallToolResult, McpError> {
        let _ = p.approval;
        self.answer(
            |v| format!("resumed {}", v["sweep_id"].as_str().unwrap_or("")),
            move |s| s.resume(&p.sweep_id),
        )
        .await
    }

    #[tool(
        description = "Every sweep this server started, with its state and spend, and the spending committed against the server's total limit."
    )]
    async fn list_sweeps(&self) -> Result<CallToolResult, McpError> {
        self.answer(
            |v| format!("{} sweep(s)", v["sweeps"].as_array().map_or(0, Vec::len)),
            |s| Ok(s.list()),
        )
        .await
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for KlingBatchMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("kling-batch", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "kling-batch runs batches of Kling video generations within a human's spending limits. Validate and plan a manifest; show the human plan_sweep's estimate and get their approval; start_sweep with the approval token and a spend cap; follow it with sweep_status (every tool returns at once; nothing waits for generation); read sweep_results.",
            )
    }
}
