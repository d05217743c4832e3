//! Reads a YAML manifest: serde_yaml parses the text into a tree, and this walker checks every key
//! and value of it, collecting all problems in one pass instead of stopping at the first.

use super::csv_rows;
use super::diagnostic::{Origin, Problem};
use super::locate::{join_index, join_key};
use super::spec::{FieldMap, Limits, Matrix, OnUnsupported, PromptEntry, Sourced};
use super::values::{
    ENDPOINT_KEY, check_id, is_request_key, kind_of, parse_endpoint, request_field_names, scalar_text, to_json,
    unknown_key,
};
use crate::kling::Endpoint;
use crate::kling::pricing::PriceRule;
use crate::util::within::Within;
use serde_yaml::{Mapping, Value as Y};
use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

pub(super) const TOP_KEYS: &[&str] = &[
    "name",
    "defaults",
    "prompts",
    "prompts_csv",
    "matrix",
    "repeat",
    "limits",
    "pricing",
    "on_unsupported",
];
const PROMPT_KEYS: &[&str] = &["id", "prompt", "vars", "meta", "needs", "only"];
pub(super) const LIMIT_KEYS: &[&str] = &["max_spend_usd", "concurrency", "rate_per_second"];
pub(super) const PRICING_KEYS: &[&str] = &[
    "model",
    "endpoint",
    "output_resolution",
    "enable_sound",
    "cents_per_second",
];
pub(super) const MAX_REPEAT: u64 = 10_000;
pub(super) const MAX_CONCURRENCY: u64 = 10_000;
pub(super) const MAX_RATE: f64 = 10_000.0;

/// Everything a YAML manifest says, as checked values.
#[derive(Debug, Default)]
pub(super) struct Parts {
    pub name: Option<String>,
    pub defaults: FieldMap,
    pub prompts: Vec<PromptEntry>,
    pub matrix: Matrix,
    pub repeat: Option<NonZeroU32>,
    pub limits: Limits,
    pub pricing: Vec<PriceRule>,
    pub on_unsupported: OnUnsupported,
}

pub(super) struct Walker<'a> {
    pub problems: Vec<Problem>,
    /// The manifest's path as the user gave it; relative paths inside resolve against its folder.
    pub manifest_path: &'a Path,
    /// Where files the manifest names must lie, when it came from someone less trusted.
    pub within: Option<&'a Within>,
}

pub(super) fn entries(map: &Mapping) -> impl Iterator<Item = (Option<String>, &Y)> {
    map.iter().map(|(k, v)| (scalar_text(k), v))
}

impl Walker<'_> {
    pub(super) fn problem(&mut self, p: Problem) {
        self.problems.push(p);
    }

    pub(super) fn expect_mapping<'v>(&mut self, value: &'v Y, path: &str, what: &str) -> Option<&'v Mapping> {
        match value {
            Y::Mapping(m) => Some(m),
            other => {
                self.problem(Problem::new(
                    Origin::yaml(path),
                    format!("{what} must be a mapping, found {}", kind_of(other)),
                ));
                None
            }
        }
    }

    pub(super) fn key_or_problem(&mut self, key: Option<String>, path: &str) -> Option<String> {
        if key.is_none() {
            self.problem(Problem::new(Origin::yaml(path), "keys must be plain text"));
        }
        key
    }

    pub(super) fn top(&mut self, root: &Y) -> Parts {
        let mut parts = Parts::default();
        let Y::Mapping(map) = root else {
            self.problem(
                Problem::new(
                    Origin::yaml(""),
                    format!("a manifest must be a mapping, found {}", kind_of(root)),
                )
                .hint("start from manifests/example.yaml: it has `defaults:`, `prompts:` and `matrix:`"),
            );
            return parts;
        };
        let mut saw_prompts = false;
        for (key, value) in entries(map) {
            let Some(key) = self.key_or_problem(key, "") else {
                continue;
            };
            match key.as_str() {
                "name" => match value {
                    Y::String(s) => parts.name = Some(s.clone()),
                    other => self.problem(Problem::new(
                        Origin::yaml("name"),
                        format!("name must be a string, found {}", kind_of(other)),
                    )),
                },
                "defaults" => {
                    if let Some(m) = self.expect_mapping(value, "defaults", "defaults") {
                        parts.defaults = self.field_map(m, "defaults", "defaults");
                    }
                }
                "prompts" => {
                    saw_prompts = true;
                    parts.prompts.extend(self.prompts(value));
                }
                "prompts_csv" => {
                    saw_prompts = true;
                    parts.prompts.extend(self.prompts_csv(value));
                }
                "matrix" => {
                    if let Some(m) = self.expect_mapping(value, "matrix", "matrix") {
                        parts.matrix = self.matrix(m);
                    }
                }
                "repeat" => parts.repeat = self.repeat(value),
                "limits" => {
                    if let Some(m) = self.expect_mapping(value, "limits", "limits") {
                        parts.limits = self.limits(m);
                    }
                }
                "pricing" => parts.pricing = self.pricing(value),
                "on_unsupported" => match value.as_str() {
                    Some("error") => parts.on_unsupported = OnUnsupported::Error,
                    Some("adapt") => parts.on_unsupported = OnUnsupported::Adapt,
                    _ => self.problem(
                        Problem::new(
                            Origin::yaml("on_unsupported"),
                            "on_unsupported must be `error` or `adapt`",
                        )
                        .hint("`adapt` leaves out matrix keys a model does not take and skips values it refuses"),
                    ),
                },
                other => {
                    let mut p = unknown_key(
                        Origin::yaml_key(other),
                        "a top-level key",
                        other,
                        TOP_KEYS.iter().copied(),
                    );
                    if is_request_key(other) {
                        p = p.hint(format!(
                            "`{other}` is a request field: put it under `defaults:`, in a prompt entry, or under `matrix:`"
                        ));
                    }
                    self.problem(p);
                }
            }
        }
        if !saw_prompts {
            self.problem(
                Problem::new(
                    Origin::File(self.manifest_path.to_path_buf()),
                    "the manifest has no prompts",
                )
                .hint("add a `prompts:` list (or `prompts_csv: file.csv`) with at least one prompt"),
            );
        }
        parts
    }

    /// Request fields (and `endpoint`) of `defaults:`, a prompt entry or a matrix entry.
    pub(super) fn field_map(&mut self, map: &Mapping, path: &str, what: &str) -> FieldMap {
        let mut fields = FieldMap::new();
        for (key, value) in entries(map) {
            let Some(key) = self.key_or_problem(key, path) else {
                continue;
            };
            let at = join_key(path, &key);
            if let Some(v) = self.field_value(&key, value, &at, what) {
                fields.insert(
                    key,
                    Sourced {
                        value: v,
                        origin: Origin::yaml(&at),
                    },
                );
            }
        }
        fields
    }

    /// One request field's value; `None` (with a problem recorded) if the key or value is unusable.
    pub(super) fn field_value(&mut self, key: &str, value: &Y, at: &str, what: &str) -> Option<serde_json::Value> {
        if !is_request_key(key) {
            let extra: &[&str] = if what == "prompt entry" { PROMPT_KEYS } else { &[] };
            let candidates = request_field_names().chain(extra.iter().copied());
            self.problem(unknown_key(
                Origin::yaml_key(at),
                &format!("a request field (in {what})"),
                key,
                candidates,
            ));
            return None;
        }
        let json = match to_json(value, &Origin::yaml(at)) {
            Ok(v) => v,
            Err(p) => {
                self.problem(p);
                return None;
            }
        };
        if key == ENDPOINT_KEY {
            let Some(text) = json.as_str() else {
                self.problem(Problem::new(
                    Origin::yaml(at),
                    "endpoint must be a string such as text_to_video",
                ));
                return None;
            };
            return match parse_endpoint(text, &Origin::yaml(at)) {
                Ok(e) => Some(serde_json::Value::String(e.as_str().to_string())),
                Err(p) => {
                    self.problem(p);
                    None
                }
            };
        }
        Some(json)
    }

    fn prompts(&mut self, value: &Y) -> Vec<PromptEntry> {
        let Y::Sequence(items) = value else {
            self.problem(
                Problem::new(
                    Origin::yaml("prompts"),
                    format!("prompts must be a list, found {}", kind_of(value)),
                )
                .hint("write each prompt on its own line starting with `- `"),
            );
            return Vec::new();
        };
        if items.is_empty() {
            self.problem(Problem::new(Origin::yaml("prompts"), "prompts is empty").hint("add at least one prompt"));
        }
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let path = join_index("prompts", i);
            if let Some(entry) = self.prompt_entry(item, &path) {
                out.push(entry);
            }
        }
        out
    }

    fn prompt_entry(&mut self, item: &Y, path: &str) -> Option<PromptEntry> {
        let origin = Origin::yaml(path);
        let mut entry = PromptEntry {
            id: None,
            origin: origin.clone(),
            fields: FieldMap::new(),
            vars: Vec::new(),
            meta: BTreeMap::new(),
            needs: None,
            only: None,
        };
        match item {
            Y::String(text) => {
                entry.fields.insert(
                    "prompt".into(),
                    Sourced {
                        value: text.clone().into(),
                        origin: origin.clone(),
                    },
                );
            }
            Y::Mapping(map) => {
                for (key, value) in entries(map) {
                    let Some(key) = self.key_or_problem(key, path) else {
                        continue;
                    };
                    let at = join_key(path, &key);
                    match key.as_str() {
                        "id" => match scalar_text(value) {
                            Some(id) => match check_id(&id, &Origin::yaml(&at)) {
                                Ok(()) => entry.id = Some(id),
                                Err(p) => self.problem(p),
                            },
                            None => self.problem(Problem::new(Origin::yaml(&at), "id must be a string")),
                        },
                        "needs" => match scalar_text(value) {
                            Some(id) if !id.trim().is_empty() => {
                                entry.needs = Some(Sourced {
                                    value: id.trim().to_string(),
                                    origin: Origin::yaml(&at),
                                })
                            }
                            _ => self.problem(
                                Problem::new(Origin::yaml(&at), "needs must name one prompt entry by its id")
                                    .hint("write `needs: base`, where an earlier entry has `id: base`"),
                            ),
                        },
                        "only" => match scalar_text(value) {
                            Some(rule) if !rule.trim().is_empty() => {
                                entry.only = Some(Sourced {
                                    value: rule.trim().to_string(),
                                    origin: Origin::yaml(&at),
                                })
                            }
                            _ => self.problem(
                                Problem::new(Origin::yaml(&at), "only must say which parents the step runs for").hint(
                                    "write `only: picked`, `only: \"rating >= 4\"` or `only: \"top 2 per prompt\"`",
                                ),
                            ),
                        },
                        "vars" => entry.vars = self.vars(value, &at),
                        "meta" => entry.meta = self.meta(value, &at),
                        _ => {
                            if let Some(v) = self.field_value(&key, value, &at, "prompt entry") {
                                entry.fields.insert(
                                    key,
                                    Sourced {
                                        value: v,
                                        origin: Origin::yaml(&at),
                                    },
                                );
                            }
                        }
                    }
                }
            }
            other => {
                self.problem(
                    Problem::new(
                        origin,
                        format!("a prompt entry must be a string or a mapping, found {}", kind_of(other)),
                    )
                    .hint("write `- \"your prompt\"` or `- { prompt: \"…\", duration_seconds: 10 }`"),
                );
                return None;
            }
        }
        if let Some(prompt) = entry.fields.get("prompt")
            && prompt.value.as_str().is_some_and(|s| s.trim().is_empty())
        {
            self.problem(
                Problem::new(prompt.origin.clone(), "the prompt is empty").hint("write what the video should show"),
            );
        }
        Some(entry)
    }

    fn vars(&mut self, value: &Y, path: &str) -> Vec<(String, Vec<Sourced<String>>)> {
        let Some(map) = self.expect_mapping(value, path, "vars") else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (name, values) in entries(map) {
            let Some(name) = self.key_or_problem(name, path) else {
                continue;
            };
            let at = join_key(path, &name);
            let valid_name = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid_name {
                self.problem(
                    Problem::new(Origin::yaml_key(&at), format!("`{name}` is not a usable variable name")).hint(
                        "use letters, digits and `_`, starting with a letter, and write it as {name} in the prompt",
                    ),
                );
                continue;
            }
            if is_request_key(&name) {
                self.problem(
                    Problem::new(
                        Origin::yaml_key(&at),
                        format!("variable `{name}` has the name of a request field"),
                    )
                    .hint(format!(
                        "to sweep `{name}`, put it under `matrix:`; otherwise rename the variable"
                    )),
                );
                continue;
            }
            let list: Vec<(usize, &Y)> = match values {
                Y::Sequence(items) => items.iter().enumerate().collect(),
                scalar => vec![(usize::MAX, scalar)],
            };
            if list.is_empty() {
                self.problem(
                    Problem::new(Origin::yaml(&at), format!("vars.{name} has no values"))
                        .hint("give at least one value"),
                );
                continue;
            }
            let mut texts = Vec::new();
            for (i, item) in list {
                let item_path = if i == usize::MAX {
                    at.clone()
                } else {
                    join_index(&at, i)
                };
                match scalar_text(item) {
                    Some(text) => texts.push(Sourced {
                        value: text,
                        origin: Origin::yaml(&item_path),
                    }),
                    None => self.problem(Problem::new(
                        Origin::yaml(&item_path),
                        format!("values of vars.{name} must be text or numbers, found {}", kind_of(item)),
                    )),
                }
            }
            out.push((name, texts));
        }
        out
    }

    fn meta(&mut self, value: &Y, path: &str) -> BTreeMap<String, String> {
        let Some(map) = self.expect_mapping(value, path, "meta") else {
            return BTreeMap::new();
        };
        let mut out = BTreeMap::new();
        for (key, value) in entries(map) {
            let Some(key) = self.key_or_problem(key, path) else {
                continue;
            };
            match value {
                Y::Null => {}
                other => match scalar_text(other) {
                    Some(text) => {
                        out.insert(key, text);
                    }
                    None => self.problem(Problem::new(
                        Origin::yaml(join_key(path, &key)),
                        format!("meta values must be text or numbers, found {}", kind_of(other)),
                    )),
                },
            }
        }
        out
    }

    fn prompts_csv(&mut self, value: &Y) -> Vec<PromptEntry> {
        let Some(rel) = value.as_str() else {
            self.problem(Problem::new(
                Origin::yaml("prompts_csv"),
                "prompts_csv must be a file path",
            ));
            return Vec::new();
        };
        let dir = self.manifest_path.parent().unwrap_or(Path::new(""));
        let mut path: PathBuf = dir.join(rel);
        if let Some(within) = self.within {
            match within.check(&path) {
                Ok(inside) => path = inside,
                Err(_) => {
                    self.problem(
                        Problem::new(
                            Origin::yaml("prompts_csv"),
                            format!("prompts_csv: `{rel}` {}", crate::util::within::OUTSIDE),
                        )
                        .hint("put the CSV file inside the runs folder and name it relative to the manifest"),
                    );
                    return Vec::new();
                }
            }
        }
        let (entries, problems) = csv_rows::read_prompt_file(&path, Some(Origin::yaml("prompts_csv")));
        self.problems.extend(problems);
        entries
    }
}

/// Every endpoint a model name is served on.
pub fn endpoints_of(model: &str) -> Vec<Endpoint> {
    Endpoint::ALL
        .into_iter()
        .filter(|e| crate::kling::models_for(*e).contains(&model))
        .collect()
}
