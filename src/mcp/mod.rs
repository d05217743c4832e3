//! `kling-batch mcp`: a Model Context Protocol server, so that an agent (Hermes Agent, OpenClaw)
//! can validate, plan, start, watch and read sweeps — within limits a human set when starting it
//! and the agent cannot change. What it keeps on disk (`book`), the approvals bound to a plan
//! (`approval`), what each tool does (`sweeps`), the tools on rmcp (`server`), and the command
//! that serves them over stdio or streamable HTTP (`command`).

pub mod approval;
pub mod book;
mod command;
mod confirm;
mod estimate;
mod process;
pub mod server;
pub mod sweeps;
mod watch;

pub(crate) use command::run;
