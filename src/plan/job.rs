//! A planned job and its identity.

use crate::kling::Endpoint;
use crate::pricing::Estimate;
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;

/// A job's id: `<prompt id or slug>-<16 hex of the request's hash>[-r<sample>]`. Stable (the same
/// request gives the same id wherever it appears in the manifest), unique within a plan, and safe
/// as a file name (`[a-z0-9._-]`, at most 64 characters). The first sample of a request carries no
/// suffix, so raising `repeat:` adds jobs without renaming the ones that exist.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct JobId(String);

impl JobId {
    pub fn new(prefix: &str, request_hash: &str, sample: u32) -> JobId {
        let prefix = if prefix.is_empty() { "job" } else { prefix };
        let mut id = format!("{prefix}-{request_hash}");
        if sample > 1 {
            id.push_str(&format!("-r{sample}"));
        }
        JobId(id)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobSpec {
    pub id: JobId,
    pub endpoint: Endpoint,
    /// The JSON body of the create request, exactly as it will be sent.
    pub request: Map<String, Value>,
    /// The prompt entry this job came from (0-based, in manifest order).
    pub prompt_index: usize,
    /// The prompt entry's id, or the start of its prompt, for people to read.
    pub label: String,
    /// The swept parameters (matrix keys and template variables) and their values for this job.
    pub params: BTreeMap<String, Value>,
    /// The user's metadata for the prompt entry.
    pub meta: BTreeMap<String, String>,
    /// 1-based sample number when `repeat:` asks for several samples of one request.
    pub sample: u32,
    pub estimate: Estimate,
}

impl JobSpec {
    pub fn model(&self) -> Option<&str> {
        self.request.get("model").and_then(Value::as_str)
    }

    pub fn prompt(&self) -> Option<&str> {
        self.request.get("prompt").and_then(Value::as_str)
    }
}

/// JSON with object keys sorted at every level: the same value always gives the same text,
/// whatever map order a dependency's features select.
pub fn canonical_json(value: &Value) -> String {
    fn write(value: &Value, out: &mut String) {
        match value {
            Value::Object(map) => {
                let sorted: BTreeMap<&String, &Value> = map.iter().collect();
                out.push('{');
                for (i, (k, v)) in sorted.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    write(v, out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(v, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(value, &mut out);
    out
}

/// 16 hex digits of the SHA-256 of the endpoint and the canonical request body.
pub fn request_hash(endpoint: Endpoint, request: &Map<String, Value>) -> String {
    let mut doc = Map::new();
    doc.insert("endpoint".into(), Value::String(endpoint.as_str().into()));
    doc.insert("request".into(), Value::Object(request.clone()));
    let digest = Sha256::digest(canonical_json(&Value::Object(doc)).as_bytes());
    crate::hex::hex(&digest[..8])
}

/// A readable, filesystem-safe fragment of `text`: lowercase ASCII words joined by `-`, cut at a
/// word boundary to at most `max` characters. Empty when the text has no ASCII letters or digits.
pub fn slug(text: &str, max: usize) -> String {
    let mut out = String::new();
    for word in text
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
    {
        let extra = if out.is_empty() { word.len() } else { word.len() + 1 };
        if out.len() + extra > max {
            if out.is_empty() {
                out.push_str(&word[..max]);
            }
            break;
        }
        if !out.is_empty() {
            out.push('-');
        }
        out.push_str(&word);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_short_safe_words() {
        assert_eq!(
            slug("A drone shot pulling back from a mountain lake", 32),
            "a-drone-shot-pulling-back-from-a"
        );
        assert_eq!(slug("../../etc/passwd\0", 32), "etc-passwd");
        assert_eq!(slug("🌊🌊", 32), "");
        assert_eq!(slug("supercalifragilisticexpialidocious", 10), "supercalif");
    }

    #[test]
    fn canonical_json_sorts_keys() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":{"d":[1,{"z":0,"y":1}],"c":"x"}}"#).unwrap();
        assert_eq!(canonical_json(&a), r#"{"a":{"c":"x","d":[1,{"y":1,"z":0}]},"b":1}"#);
    }
}
