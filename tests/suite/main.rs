//! The integration suite: one test binary (one link) with a module per area.

// Tests print what they measured, for whoever reads a failure.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bad_manifests;
mod bucket;
mod claims;
mod common;
mod expansion;
mod hostile;
mod identity;
mod inputs;
mod newcomer;
mod newuser;
mod paused;
mod pg;
mod plan_output;
mod polling;
mod properties;
mod reliability;
mod report;
mod review;
mod run;
mod s3;
mod shared;
mod silent;
mod sim;
mod steps;
mod uploads_in_time;
