//! A manifest's text (or a CSV file's it names): read whole, under a size cap, as UTF-8, with a
//! problem that names the file when it cannot be.

use super::diagnostic::{Origin, Problem};
use std::io::Read;
use std::path::Path;

/// Manifests (and CSV files they name) larger than this are refused before being read.
pub const MAX_MANIFEST_BYTES: u64 = 16 * 1024 * 1024;

/// The text of `path`, refusing files over the size cap, folders and non-UTF-8 content.
pub(crate) fn read_capped(path: &Path) -> Result<String, Problem> {
    let origin = Origin::File(path.to_path_buf());
    let file = std::fs::File::open(path).map_err(|e| {
        let problem = Problem::new(
            origin.clone(),
            format!("cannot read {}: {}", path.display(), io_reason(&e)),
        );
        match e.kind() {
            std::io::ErrorKind::NotFound => {
                problem.hint("check the path; relative paths start from the current folder")
            }
            _ => problem,
        }
    })?;
    let meta = file
        .metadata()
        .map_err(|e| Problem::new(origin.clone(), format!("cannot read {}: {e}", path.display())))?;
    if meta.is_dir() {
        return Err(Problem::new(
            origin,
            format!("{} is a folder, not a manifest file", path.display()),
        ));
    }
    let too_large = || {
        Problem::new(
            origin.clone(),
            format!("the file is larger than {} MiB", MAX_MANIFEST_BYTES >> 20),
        )
        .hint("split the sweep into several manifests")
    };
    if meta.len() > MAX_MANIFEST_BYTES {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_MANIFEST_BYTES + 1).read_to_end(&mut bytes).map_err(|e| {
        Problem::new(
            origin.clone(),
            format!("cannot read {}: {}", path.display(), io_reason(&e)),
        )
    })?;
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(too_large());
    }
    String::from_utf8(bytes).map_err(|e| {
        Problem::new(
            origin,
            format!(
                "the file is not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
        .hint("save it as UTF-8")
    })
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}
