//! Reading a manifest file: size cap, UTF-8, YAML or CSV by extension, then the checks.

use super::csv_rows::read_prompt_file;
use super::diagnostic::{Diagnostic, Origin, Problem};
use super::spec::{Manifest, ManifestKind, Matrix, Sources};
use super::yaml::Walker;
use crate::util::within::Within;
use std::num::NonZeroU32;
use std::path::Path;

use super::text::read_capped;

/// A manifest that cannot be used, with every problem found in it.
#[derive(Debug, thiserror::Error)]
#[error("{} problem{} in the manifest", .diagnostics.len(), if .diagnostics.len() == 1 { "" } else { "s" })]
pub struct ManifestError {
    pub diagnostics: Vec<Diagnostic>,
}

/// A manifest read as far as it could be, with the problems found on the way. Expansion can
/// still run on it, so one pass reports the problems of both stages.
#[derive(Debug)]
pub struct Loaded {
    pub manifest: Manifest,
    pub problems: Vec<Diagnostic>,
}

/// Checks a YAML manifest given as text (see `parse_yaml`); any problem is an error.
pub fn from_yaml(text: &str, path: &Path) -> Result<Manifest, ManifestError> {
    let loaded = parse_yaml(text.to_string(), path)?;
    if loaded.problems.is_empty() {
        Ok(loaded.manifest)
    } else {
        Err(ManifestError {
            diagnostics: loaded.problems,
        })
    }
}

/// Reads and checks the manifest at `path`; any problem is an error.
pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
    let loaded = read(path)?;
    if loaded.problems.is_empty() {
        Ok(loaded.manifest)
    } else {
        Err(ManifestError {
            diagnostics: loaded.problems,
        })
    }
}

/// Reads the manifest at `path` as far as possible. An error means nothing usable was read
/// (no file, not YAML at all); other problems travel in `Loaded::problems`.
pub fn read(path: &Path) -> Result<Loaded, ManifestError> {
    read_within(path, None)
}

/// `read`, with every file the manifest names (`prompts_csv:`) refused unless it lies `within`
/// a folder: what an agent's manifest may reach. Nothing outside is opened.
pub fn read_within(path: &Path, within: Option<&Within>) -> Result<Loaded, ManifestError> {
    let extension = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("csv") => load_csv(path),
        Some("yaml" | "yml") => load_yaml(path, within),
        _ => Err(ManifestError {
            diagnostics: Sources::default().resolve(vec![
                Problem::new(
                    Origin::File(path.to_path_buf()),
                    "a manifest must be a .yaml, .yml or .csv file",
                )
                .hint("rename the file with the extension of its format"),
            ]),
        }),
    }
}

fn load_yaml(path: &Path, within: Option<&Within>) -> Result<Loaded, ManifestError> {
    let text = read_capped(path).map_err(|p| ManifestError {
        diagnostics: Sources::default().resolve(vec![p]),
    })?;
    parse_yaml_within(text, path, within)
}

/// Checks a YAML manifest given as text; `path` names it in messages, and files it names
/// (`prompts_csv:`) are read relative to its folder. Tests, benches and the fuzzer read
/// manifests this way, without a file.
pub fn parse_yaml(text: String, path: &Path) -> Result<Loaded, ManifestError> {
    parse_yaml_within(text, path, None)
}

fn parse_yaml_within(text: String, path: &Path, within: Option<&Within>) -> Result<Loaded, ManifestError> {
    // The parser underneath takes time quadratic in nesting depth before its own limit answers
    // (40,000 levels: seconds): a linear scan stops a deep file first, with the place.
    if let Some((line, column)) = flow_nesting_past(&text, MAX_NESTING) {
        return Err(ManifestError {
            diagnostics: vec![Diagnostic {
                place: super::Place {
                    file: path.to_path_buf(),
                    line: Some(line),
                    column: Some(column),
                    column_name: None,
                },
                subject: None,
                message: format!("the YAML is nested too deeply (more than {MAX_NESTING} levels)"),
                hints: vec!["flatten the structure".to_string()],
                occurrences: 1,
            }],
        });
    }
    let mut root: serde_yaml::Value = match serde_yaml::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            return Err(ManifestError {
                diagnostics: vec![yaml_syntax(path, &e)],
            });
        }
    };
    if let Err(e) = root.apply_merge() {
        return Err(ManifestError {
            diagnostics: vec![yaml_syntax(path, &e)],
        });
    }
    let mut walker = Walker {
        problems: Vec::new(),
        manifest_path: path,
        within,
    };
    let parts = walker.top(&root);
    let sources = Sources::yaml(path.to_path_buf(), text);
    let problems = sources.resolve(walker.problems);
    let manifest = Manifest {
        name: parts.name,
        path: path.to_path_buf(),
        kind: ManifestKind::Yaml,
        defaults: parts.defaults,
        prompts: parts.prompts,
        matrix: parts.matrix,
        repeat: parts.repeat.unwrap_or(NonZeroU32::MIN),
        limits: parts.limits,
        pricing: parts.pricing,
        on_unsupported: parts.on_unsupported,
        sources,
    };
    Ok(Loaded { manifest, problems })
}

fn load_csv(path: &Path) -> Result<Loaded, ManifestError> {
    let (prompts, problems) = read_prompt_file(path, None);
    let sources = Sources::default();
    let problems = sources.resolve(problems);
    let manifest = Manifest {
        name: path.file_stem().map(|s| s.to_string_lossy().into_owned()),
        path: path.to_path_buf(),
        kind: ManifestKind::Csv,
        defaults: Default::default(),
        prompts,
        matrix: Matrix::default(),
        repeat: NonZeroU32::MIN,
        limits: Default::default(),
        pricing: Vec::new(),
        on_unsupported: Default::default(),
        sources,
    };
    Ok(Loaded { manifest, problems })
}

/// serde_yaml's own recursion limit: nothing deeper can load anyway.
const MAX_NESTING: usize = 128;

/// The place (line, column, 1-based) where flow collections (`[`, `{`) open more than `limit`
/// deep, in one linear pass. A bracket counts only where a collection can start (line start, after
/// `:`, `-`, `?`, `,`, `[` or `{`), never inside quotes or comments, so prose such as
/// `a [b` in a plain scalar does not.
fn flow_nesting_past(text: &str, limit: usize) -> Option<(u64, u64)> {
    let (mut depth, mut line, mut column) = (0usize, 1u64, 0u64);
    let (mut single, mut double, mut escaped, mut comment) = (false, false, false, false);
    let mut previous: Option<char> = None; // the last character that was not a space
    let mut after_space = true;
    for c in text.chars() {
        if c == '\n' {
            line += 1;
            column = 0;
            comment = false;
            previous = None;
            after_space = true;
            continue;
        }
        column += 1;
        if comment {
            continue;
        }
        if double {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                double = false;
            }
            continue;
        }
        if single {
            single = c != '\'';
            continue;
        }
        let starts_token = previous.is_none_or(|p| matches!(p, ':' | '-' | '?' | ',' | '[' | '{'));
        match c {
            ' ' | '\t' => {
                after_space = true;
                continue;
            }
            '#' if after_space => comment = true,
            '"' if starts_token => double = true,
            '\'' if starts_token => single = true,
            '[' | '{' if starts_token => {
                depth += 1;
                if depth > limit {
                    return Some((line, column));
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        previous = Some(c);
        after_space = false;
    }
    None
}

/// A YAML parse error as a diagnostic, in plain words for the failures people meet.
fn yaml_syntax(path: &Path, error: &serde_yaml::Error) -> Diagnostic {
    let raw = error.to_string();
    let (message, hint) = if raw.contains("repetition limit exceeded") {
        (
            "the YAML expands its aliases too many times (an alias bomb?)".to_string(),
            "write the values out, or use fewer nested `*alias` references".to_string(),
        )
    } else if raw.contains("recursion limit exceeded") {
        (
            "the YAML is nested too deeply".to_string(),
            "flatten the structure".to_string(),
        )
    } else {
        let message = raw.split(" at line ").next().unwrap_or(&raw).to_string();
        (
            format!("not valid YAML: {message}"),
            "check the indentation and quoting near this place".to_string(),
        )
    };
    let location = error.location();
    Diagnostic {
        place: super::Place {
            file: path.to_path_buf(),
            line: location.as_ref().map(|l| l.line() as u64),
            column: location.as_ref().map(|l| l.column() as u64),
            column_name: None,
        },
        subject: None,
        message,
        hints: vec![hint],
        occurrences: 1,
    }
}

#[cfg(test)]
mod tests {
    use super::flow_nesting_past;

    #[test]
    fn deep_flow_nesting_is_found_in_linear_time_with_its_place() {
        let deep = format!("prompts: {}{}\n", "[".repeat(200_000), "]".repeat(200_000));
        let started = std::time::Instant::now();
        assert_eq!(flow_nesting_past(&deep, 128), Some((1, 10 + 128)));
        // Not a timing assertion: a guard against the quadratic parser being reached at all.
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        let maps = format!("a:\n  b: {}1{}", "{x: ".repeat(300), "}".repeat(300));
        assert_eq!(flow_nesting_past(&maps, 128).map(|p| p.0), Some(2));
        for fine in [
            "prompts: [a, [b, {c: [d]}]]\n",
            "prompts:\n  - a [b with an open bracket\n  - \"[[[[[[\"\n  - '{{{{{' # [[[[\n",
        ] {
            assert_eq!(flow_nesting_past(fine, 4), None, "{fine}");
        }
        let prose = "prompts:\n".to_string() + &"  - a [scene\n".repeat(500);
        assert_eq!(
            flow_nesting_past(&prose, 128),
            None,
            "brackets inside plain text do not nest"
        );
    }
}
