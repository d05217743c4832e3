//! Helpers shared by the suite: running the real binary from the repository root.

use assert_cmd::Command;
use std::path::PathBuf;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `kling-batch` binary, run from the repository root so paths in output are stable.
pub fn kling_batch() -> Command {
    let mut cmd = Command::cargo_bin("kling-batch").expect("the binary is built for integration tests");
    cmd.current_dir(repo_root());
    cmd.env_remove("RUNAPI_API_KEY").env_remove("RUNAPI_BASE_URL");
    cmd
}

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(args: &[&str]) -> Output {
    let out = kling_batch().args(args).output().expect("the binary runs");
    Output {
        code: out.status.code().expect("exited, not killed by a signal"),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    }
}
