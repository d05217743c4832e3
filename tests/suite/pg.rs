//! A throwaway PostgreSQL for the tests: Debian's server binaries (test.sh installs the
//! `postgresql` package if they are missing), a cluster made by `initdb` in a temporary folder,
//! started by `pg_ctl` on a free port of 127.0.0.1 — as the `postgres` user when the tests run as
//! root, since the server refuses to run as root. Stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;

pub(crate) struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

/// The newest installed server's binaries.
fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("KLING_BATCH_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's server is installed (test.sh installs Debian's `postgresql`)")
        .filter_map(Result::ok)
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    found.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found.pop().expect("an initdb under /usr/lib/postgresql/*/bin")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Postgres {
    pub(crate) fn start() -> Postgres {
        let bin = bin_dir();
        let as_postgres = is_root();
        let dir = tempfile::Builder::new().prefix("kb-pg-").tempdir().unwrap();
        if as_postgres {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap()
                .success();
            assert!(ok, "chown the cluster folder to postgres");
        }
        let pg = Postgres {
            dir,
            bin,
            port: free_port(),
            as_postgres,
        };
        let data = pg.data();
        pg.tool(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "kb",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        pg.pg_ctl("start");
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn tool(&self, name: &str, args: &[&str]) {
        let program = self.bin.join(name);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=postgres", "--regid=postgres", "--init-groups"])
                .arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let out = cmd.args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{name} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn pg_ctl(&self, action: &str) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c full_page_writes=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log");
        self.tool(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-o",
                &options,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-m",
                "fast",
                action,
            ],
        );
    }

    /// Stops the server (what a database restart or outage looks like to the workers).
    pub(crate) fn stop(&self) {
        self.pg_ctl("stop");
    }

    pub(crate) fn restart(&self) {
        self.pg_ctl("start");
    }

    /// A connection URL for a new database on this server.
    pub(crate) fn database(&self, name: &str) -> String {
        let out = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "kb",
                "-d",
                "postgres",
                "-c",
            ])
            .arg(format!("create database {name}"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        self.url(name)
    }

    /// The port the cluster listens on (127.0.0.1).
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    pub(crate) fn url(&self, database: &str) -> String {
        format!("postgres://kb@127.0.0.1:{}/{database}", self.port)
    }

    /// Runs SQL through psql, returning what it printed (unaligned, tuples only).
    pub(crate) fn sql(&self, database: &str, sql: &str) -> String {
        self.try_sql(database, sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// `sql`, or the error (a table the workers have not made yet).
    pub(crate) fn try_sql(&self, database: &str, sql: &str) -> Result<String, String> {
        let out = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "kb",
                "-d",
                database,
            ])
            .args(["-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .unwrap();
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    #[allow(dead_code)]
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Command::new(self.bin.join("pg_ctl"))
            .args(["-D", self.data().to_str().unwrap(), "-m", "immediate", "stop"])
            .output();
        if self.as_postgres {
            let _ = Command::new("setpriv")
                .args(["--reuid=postgres", "--regid=postgres", "--init-groups"])
                .arg(self.bin.join("pg_ctl"))
                .args(["-D", self.data().to_str().unwrap(), "-m", "immediate", "stop"])
                .output();
        }
    }
}

/// SQL counting the records of kind `t` written by the worker whose process is `pid`.
pub(crate) fn records_of(pid: u32, t: &str) -> String {
    format!(
        "select count(*) from kb_records r join kb_workers w on w.sweep = r.sweep and w.worker = r.worker \
         where w.pid = {pid} and r.record like '%\"t\":\"{t}\"%'"
    )
}
