//! A real S3-compatible server for the tests: `s3s-fs` 0.14.1 from crates.io (test.sh installs it
//! into a cache folder outside the repository, `~/.cache/kling-batch/s3s-fs`), on a free port of
//! 127.0.0.1, each folder of its root a bucket. It checks SigV4 signatures and keeps multipart
//! uploads. Stopped when dropped.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub(crate) const ACCESS_KEY: &str = "AKIAKLINGBATCHTEST";
pub(crate) const SECRET_KEY: &str = "kb-s3-secret-do-not-leak-7f3a";

pub(crate) struct S3Server {
    root: tempfile::TempDir,
    child: std::process::Child,
    port: u16,
}

fn binary() -> PathBuf {
    if let Ok(path) = std::env::var("KLING_BATCH_S3S_FS") {
        return PathBuf::from(path);
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let path = Path::new(&home).join(".cache/kling-batch/s3s-fs/bin/s3s-fs");
    assert!(
        path.exists(),
        "s3s-fs is not installed at {} (test.sh installs it: cargo install --locked s3s-fs@0.14.1 --features binary --root ~/.cache/kling-batch/s3s-fs)",
        path.display()
    );
    path
}

impl S3Server {
    /// Starts the server with `buckets` made.
    pub(crate) fn start(buckets: &[&str]) -> S3Server {
        let root = tempfile::tempdir().unwrap();
        for b in buckets {
            std::fs::create_dir(root.path().join(b)).unwrap();
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new(binary())
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(root.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("s3s-fs starts");
        // Ready once it takes connections.
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(20),
                "s3s-fs did not start"
            );
            std::thread::yield_now();
        }
        S3Server { root, child, port }
    }

    /// The `AWS_*` settings that reach it, with `secret` as the secret key.
    pub(crate) fn config(&self, secret: &str) -> HashMap<String, String> {
        [
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_string()),
            ("AWS_SECRET_ACCESS_KEY", secret.to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
            ("AWS_ENDPOINT", format!("http://127.0.0.1:{}", self.port)),
            ("AWS_ALLOW_HTTP", "true".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    pub(crate) fn root(&self) -> &Path {
        self.root.path()
    }

    /// Every file under the root (objects, and whatever the server keeps for unfinished uploads).
    pub(crate) fn files(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out);
                } else {
                    out.push(path);
                }
            }
        }
        let mut out = Vec::new();
        walk(self.root.path(), &mut out);
        out.sort();
        out
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
