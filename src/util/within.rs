//! A folder that file names must stay inside: what the MCP server's runs folder is to a manifest
//! an agent sent. A name is judged first as written (`..` taken lexically), so a name that points
//! outside is refused before the disk is asked anything — the refusal says nothing of whether such
//! a file exists; then with links followed, through the deepest part of it that exists, so a link
//! inside that leads out is refused too. Folders inside may be closed off (the server's own, with
//! its secret), and folders inside those opened again (the manifests an agent sent as text).
//!
//! A check is a hint until the file is opened: whoever opens it checks again (`check` on the same
//! name), and a file's content is checked against its hash before any of it leaves.

use std::path::{Component, Path, PathBuf};

/// The words every refusal carries, so that callers can tell this refusal from other problems.
pub const OUTSIDE: &str = "is outside the runs folder";

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Within {
    root: PathBuf,
    closed: Vec<PathBuf>,
    reopened: Vec<PathBuf>,
}

impl Within {
    /// Names must lead inside `root` (made absolute and resolved, when it exists).
    pub fn new(root: &Path) -> Within {
        Within {
            root: resolved(root),
            closed: Vec::new(),
            reopened: Vec::new(),
        }
    }

    /// `folder` (inside the root) counts as outside.
    pub fn closing(mut self, folder: &Path) -> Within {
        self.closed.push(resolved(folder));
        self
    }

    /// `folder`, inside a closed one, counts as inside again.
    pub fn reopening(mut self, folder: &Path) -> Within {
        self.reopened.push(resolved(folder));
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn admits(&self, path: &Path) -> bool {
        path.starts_with(&self.root)
            && (!self.closed.iter().any(|c| path.starts_with(c)) || self.reopened.iter().any(|r| path.starts_with(r)))
    }

    /// `path` as it is on disk (links followed) when it lies inside; the path as written when it
    /// lies inside but does not exist (opening it will say so). `Err` when it lies outside, as
    /// written or as resolved.
    pub fn check(&self, path: &Path) -> Result<PathBuf, Outside> {
        let written = lexical(path);
        if !self.admits(&written) {
            return Err(Outside);
        }
        // The deepest part that exists, resolved, must lie inside; the rest is plain names.
        let mut existing = written.as_path();
        loop {
            if let Ok(resolved) = std::fs::canonicalize(existing) {
                if !self.admits(&resolved) {
                    return Err(Outside);
                }
                let rest = written.strip_prefix(existing).unwrap_or(Path::new(""));
                return Ok(if rest.as_os_str().is_empty() {
                    resolved
                } else {
                    resolved.join(rest)
                });
            }
            match existing.parent() {
                Some(parent) => existing = parent,
                None => return Err(Outside),
            }
        }
    }

    /// Whether a pattern's fixed part (before its first `*`, `?` or `[`) lies inside: a pattern
    /// reaching outside is refused before anything is listed.
    pub fn admits_pattern(&self, pattern: &Path) -> bool {
        let fixed: PathBuf = pattern
            .components()
            .take_while(|c| !c.as_os_str().to_string_lossy().contains(['*', '?', '[']))
            .collect();
        let fixed = lexical(&fixed);
        // `..` after the fixed part could climb back out of it.
        let climbs = pattern
            .components()
            .skip_while(|c| !c.as_os_str().to_string_lossy().contains(['*', '?', '[']))
            .any(|c| c == Component::ParentDir);
        !climbs && self.check(&fixed).is_ok()
    }
}

/// A name that leads outside the folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outside;

/// `path` with links followed where it exists, else as written.
fn resolved(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| lexical(path))
}

/// `path` made absolute (against the working folder) with `.` and `..` taken as written.
fn lexical(path: &Path) -> PathBuf {
    let mut out = if path.is_absolute() {
        PathBuf::new()
    } else {
        std::env::current_dir().unwrap_or_default()
    };
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_leading_out_are_refused_as_written_and_as_resolved() {
        let dir = tempfile::tempdir().unwrap();
        let runs = dir.path().join("runs");
        let own = runs.join(".own");
        std::fs::create_dir_all(own.join("manifests")).unwrap();
        std::fs::write(runs.join("a.png"), b"x").unwrap();
        std::fs::write(own.join("secret"), b"x").unwrap();
        std::fs::write(dir.path().join("private.png"), b"x").unwrap();
        std::os::unix::fs::symlink(dir.path().join("private.png"), runs.join("link.png")).unwrap();
        std::os::unix::fs::symlink(dir.path(), runs.join("up")).unwrap();
        let within = Within::new(&runs).closing(&own).reopening(&own.join("manifests"));
        let root = within.root().to_path_buf();
        assert_eq!(within.check(&runs.join("a.png")), Ok(root.join("a.png")));
        assert_eq!(within.check(&runs.join("x/../a.png")), Ok(root.join("a.png")));
        assert_eq!(within.check(&runs.join("none/b.png")), Ok(root.join("none/b.png")));
        assert_eq!(
            within.check(&own.join("manifests/m.yaml")),
            Ok(root.join(".own/manifests/m.yaml"))
        );
        for outside in [
            dir.path().join("private.png"),
            runs.join("../private.png"),
            runs.join("../absent.png"),
            runs.join("link.png"),
            runs.join("up/private.png"),
            runs.join("up/absent/b.png"),
            own.join("secret"),
            own.join("manifests/../secret"),
            PathBuf::from("/proc/self/environ"),
        ] {
            assert_eq!(within.check(&outside), Err(Outside), "{}", outside.display());
        }
        assert!(within.admits_pattern(&runs.join("shots/*.png")));
        assert!(!within.admits_pattern(&dir.path().join("*.png")));
        assert!(!within.admits_pattern(&runs.join("*/../../*.png")));
        assert!(!within.admits_pattern(&runs.join("up/*.png")));
    }
}
