//! Reads prompt rows from CSV: a header of request field names (plus `id`, `endpoint` and
//! `meta.*` columns for user metadata), one prompt entry per row, with cells coerced from text
//! to the type each field takes. Used for `.csv` manifests and for `prompts_csv:`.

use super::diagnostic::{Origin, Problem};
use super::spec::{FieldMap, PromptEntry, Sourced};
use super::text::read_capped;
use super::values::{ENDPOINT_KEY, check_id, parse_endpoint, request_field_names, unknown_key};
use crate::kling::{FieldType, field};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

pub const META_PREFIX: &str = "meta.";

enum Column {
    Id,
    Needs,
    Endpoint,
    Field(&'static str, FieldType),
    Meta(String),
    Unusable,
}

/// The prompt entries of a CSV file, and every problem found in it. `referenced_from` is the
/// manifest key that names the file, when it is not the manifest itself.
pub(super) fn read_prompt_file(path: &Path, referenced_from: Option<Origin>) -> (Vec<PromptEntry>, Vec<Problem>) {
    let mut problems = Vec::new();
    let text = match read_capped(path) {
        Ok(text) => text,
        Err(p) => {
            let p = match referenced_from {
                Some(origin) => Problem { origin, ..p },
                None => p,
            };
            return (Vec::new(), vec![p]);
        }
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let file = path.to_path_buf();
    let cell = |line: u64, column: usize, name: &str| Origin::Csv {
        file: file.clone(),
        line,
        column,
        name: name.to_string(),
    };

    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            return (
                Vec::new(),
                vec![Problem::new(cell(1, 1, ""), format!("unreadable CSV header: {e}"))],
            );
        }
    };
    let mut columns = Vec::new();
    let mut seen = BTreeMap::new();
    for (i, name) in headers.iter().enumerate() {
        let origin = cell(1, i + 1, name);
        if let Some(first) = seen.insert(name.to_string(), i + 1) {
            problems.push(Problem::new(
                origin,
                format!("column `{name}` appears twice (first as column {first})"),
            ));
            columns.push(Column::Unusable);
            continue;
        }
        columns.push(match name {
            "id" => Column::Id,
            "needs" => Column::Needs,
            ENDPOINT_KEY => Column::Endpoint,
            _ if name.starts_with(META_PREFIX) && name.len() > META_PREFIX.len() => {
                Column::Meta(name[META_PREFIX.len()..].to_string())
            }
            _ => match field(name) {
                Some(spec) => Column::Field(spec.name, spec.ty),
                None => {
                    let p = unknown_key(origin, "a known column", name, request_field_names().chain(["id", "needs"]))
                        .hint("columns are request fields, `id`, `needs`, `endpoint`, or `meta.<name>` for your own notes");
                    problems.push(p);
                    Column::Unusable
                }
            },
        });
    }
    if !columns
        .iter()
        .any(|c| matches!(c, Column::Field("prompt", _) | Column::Field("multi_prompt", _)))
        && problems.is_empty()
    {
        problems.push(
            Problem::new(cell(1, 1, ""), "the CSV has no `prompt` column")
                .hint("the first line names the columns, e.g. `id,prompt,duration_seconds`"),
        );
    }

    let mut entries = Vec::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                let message = match e.kind() {
                    csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
                        format!("this row has {len} cells but the header has {expected_len}")
                    }
                    _ => format!("unreadable CSV row: {e}"),
                };
                problems
                    .push(Problem::new(cell(line, 1, ""), message).hint("quote cells that contain commas: \"a, b\""));
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        if record.iter().all(str::is_empty) {
            continue;
        }
        let mut entry = PromptEntry {
            id: None,
            origin: cell(line, 1, ""),
            fields: FieldMap::new(),
            vars: Vec::new(),
            meta: BTreeMap::new(),
            needs: None,
            only: None,
        };
        for (i, (text, column)) in record.iter().zip(&columns).enumerate() {
            if text.is_empty() {
                continue;
            }
            let name = headers.get(i).unwrap_or("");
            let origin = cell(line, i + 1, name);
            match column {
                Column::Unusable => {}
                Column::Id => match check_id(text, &origin) {
                    Ok(()) => entry.id = Some(text.to_string()),
                    Err(p) => problems.push(p),
                },
                Column::Needs => {
                    entry.needs = Some(Sourced {
                        value: text.trim().to_string(),
                        origin,
                    })
                }
                Column::Endpoint => match parse_endpoint(text, &origin) {
                    Ok(e) => {
                        entry.fields.insert(
                            ENDPOINT_KEY.into(),
                            Sourced {
                                value: e.as_str().into(),
                                origin,
                            },
                        );
                    }
                    Err(p) => problems.push(p),
                },
                Column::Meta(key) => {
                    entry.meta.insert(key.clone(), text.to_string());
                }
                Column::Field(name, ty) => match coerce(text, *ty) {
                    Ok(value) => {
                        entry.fields.insert(name.to_string(), Sourced { value, origin });
                    }
                    Err(why) => problems.push(Problem::new(origin, format!("{name} {why} (found `{text}`)"))),
                },
            }
        }
        entries.push(entry);
    }
    if entries.is_empty() && problems.is_empty() {
        problems.push(Problem::new(cell(1, 1, ""), "the CSV has a header but no rows").hint("add one row per prompt"));
    }
    (entries, problems)
}

/// A CSV cell as the JSON value its field takes.
fn coerce(text: &str, ty: FieldType) -> Result<Value, String> {
    match ty {
        FieldType::String | FieldType::Url => Ok(Value::String(text.to_string())),
        FieldType::Integer => text
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| "must be a whole number".into()),
        FieldType::Number => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| "must be a number".into()),
        FieldType::Boolean => match text.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Ok(Value::Bool(true)),
            "false" | "no" | "0" => Ok(Value::Bool(false)),
            _ => Err("must be true or false".into()),
        },
        FieldType::UrlList => {
            if text.starts_with('[') {
                serde_json::from_str(text).map_err(|_| "must be a JSON list of URLs or URLs separated by `|`".into())
            } else {
                Ok(Value::Array(
                    text.split('|').map(|s| Value::String(s.trim().to_string())).collect(),
                ))
            }
        }
        FieldType::MultiPrompt | FieldType::Elements => {
            serde_json::from_str(text).map_err(|_| "must be written as JSON in this cell".into())
        }
    }
}
