//! The first step every command that reads a manifest shares: read it, expand it, and report the
//! problems of both in file order.

use crate::manifest::{self, ManifestError};
use crate::plan::{self, Plan};
use crate::util::within::Within;
use std::path::Path;

/// Loads and expands a manifest: the shared first step of every command that reads one. Local
/// files it names are found, checked and hashed in between (none larger than `max_input_bytes`).
/// Problems from all three are reported together, in file order.
pub(crate) fn load_plan(path: &Path, max_input_bytes: Option<u64>) -> Result<Plan, ManifestError> {
    load_plan_within(path, max_input_bytes, None)
}

/// `load_plan`, with every file the manifest names refused unless it lies `within` a folder
/// (the MCP server's runs folder): nothing outside is opened, listed or quoted.
pub(crate) fn load_plan_within(
    path: &Path,
    max_input_bytes: Option<u64>,
    within: Option<&Within>,
) -> Result<Plan, ManifestError> {
    let max_input_bytes = max_input_bytes.unwrap_or(crate::inputs::DEFAULT_MAX_INPUT_BYTES);
    let loaded = manifest::read_within(path, within)?;
    let mut diagnostics = loaded.problems;
    // What was found is kept beside what was not: a pattern that matched expands whatever
    // another entry's missing file, and each problem is reported at its own place.
    let (inputs, problems) = crate::inputs::gather_all(&loaded.manifest, max_input_bytes, within);
    diagnostics.extend(loaded.manifest.sources.resolve(problems));
    let inputs = std::sync::Arc::new(inputs);
    match plan::expand_with_inputs(&loaded.manifest, inputs) {
        Ok(plan) if diagnostics.is_empty() => return Ok(plan),
        Ok(_) => {}
        Err(more) => {
            // A place already reported while reading explains whatever expansion says of it.
            let known: Vec<_> = diagnostics.iter().map(|d| d.place.clone()).collect();
            diagnostics.extend(more.into_iter().filter(|d| !known.contains(&d.place)));
        }
    }
    diagnostics.sort_by(|a, b| {
        (&a.place.file, a.place.line, a.place.column).cmp(&(&b.place.file, b.place.line, b.place.column))
    });
    Err(ManifestError { diagnostics })
}
