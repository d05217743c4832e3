//! A planned job and its identity.

use crate::kling::Endpoint;
use crate::kling::pricing::{Estimate, PricedShape};
pub use crate::kling::request::{RequestBody, canonical_json};
pub use crate::util::slug::slug;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// A job's id: `<prompt id or slug>-<16 hex of the request's hash>[-r<sample>]`. Stable (the same
/// request gives the same id wherever it appears in the manifest), unique within a plan, and safe
/// as a file name (`[a-z0-9._-]`, at most 64 characters). The first sample of a request carries no
/// suffix, so raising `repeat:` adds jobs without renaming the ones that exist.
///
/// Shared, not copied: the plan, the shared sweep's writer and its index all hold the same text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(Arc<str>);

impl Serialize for JobId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl JobId {
    pub fn new(prefix: &str, request_hash: &str, sample: u32) -> JobId {
        let prefix = if prefix.is_empty() { "job" } else { prefix };
        let mut id = format!("{prefix}-{request_hash}");
        if sample > 1 {
            id.push_str(&format!("-r{sample}"));
        }
        JobId(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for JobId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// A planned job. Compact, because a sweep may hold a million of them: the request is kept as the
/// canonical JSON text that will be sent, and what many jobs share (the prompt entry's label and
/// metadata, the priced shape, parameter names) is shared rather than copied.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSpec {
    pub id: JobId,
    pub endpoint: Endpoint,
    /// The JSON body of the create request, exactly as it will be sent.
    pub request: RequestBody,
    /// The fields that decide the price (model, resolution, sound), shared by the jobs that agree.
    pub priced: Arc<PricedShape>,
    /// The prompt entry this job came from (0-based, in manifest order).
    pub prompt_index: usize,
    /// The prompt entry's id, or the start of its prompt, for people to read.
    pub label: Arc<str>,
    /// The swept parameters (matrix keys and template variables) and their values for this job.
    pub params: Params,
    /// The user's metadata for the prompt entry.
    pub meta: Arc<BTreeMap<String, String>>,
    /// 1-based sample number when `repeat:` asks for several samples of one request.
    pub sample: u32,
    pub estimate: Estimate,
    /// For a step's job (`needs:`), the job (index in the plan) whose task it continues.
    pub parent: Option<usize>,
}

impl JobSpec {
    pub fn model(&self) -> Option<&str> {
        self.priced.model.as_deref()
    }

    /// The prompt text (read from the request: for reports, not for hot paths).
    pub fn prompt(&self) -> Option<String> {
        match self.request.fields().remove("prompt") {
            Some(Value::String(s)) => Some(s),
            _ => None,
        }
    }
}

/// The swept parameters of one job, sorted by name. Shared: the jobs of a matrix combination
/// mostly have equal parameters, and the planner keeps one copy of each.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params(Arc<[(Arc<str>, Value)]>);

impl Params {
    /// A name given twice keeps its later value.
    pub fn new(mut pairs: Vec<(Arc<str>, Value)>) -> Params {
        pairs.reverse();
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        pairs.dedup_by(|later, earlier| later.0 == earlier.0);
        Params(pairs.into())
    }

    /// Text that is equal exactly when the parameters are.
    pub fn key(&self) -> String {
        let mut key = String::new();
        for (name, value) in self.0.iter() {
            key.push_str(name);
            key.push('\0');
            key.push_str(&value.to_string());
            key.push('\0');
        }
        key
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0
            .binary_search_by(|(n, _)| n.as_ref().cmp(name))
            .ok()
            .map(|i| &self.0[i].1)
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(n, _)| n.as_ref())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(n, v)| (n.as_ref(), v))
    }
}

impl Serialize for Params {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

/// The SHA-256 of the endpoint and the canonical request body: its first 8 bytes as 16 hex digits
/// name the job, and as a number they find duplicates.
pub(super) fn request_digest(endpoint: Endpoint, body: &RequestBody) -> [u8; 8] {
    // The canonical text of {"endpoint": …, "request": …}, written without building it.
    let mut hasher = Sha256::new();
    hasher.update(b"{\"endpoint\":\"");
    hasher.update(endpoint.as_str().as_bytes());
    hasher.update(b"\",\"request\":");
    hasher.update(body.as_str().as_bytes());
    hasher.update(b"}");
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    first
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    #[test]
    fn the_request_digest_is_the_hash_of_the_canonical_endpoint_and_body() {
        // Job ids must not change between versions: this is the formula ids have always used.
        let request: Map<String, Value> =
            serde_json::from_str(r#"{"prompt":"a \"quoted\" fox 🦊","model":"kling-3.0","duration_seconds":5,"x":{"b":[1,{"d":1,"c":2}],"a":null}}"#).unwrap();
        let mut doc = Map::new();
        doc.insert("request".into(), Value::Object(request.clone()));
        doc.insert("endpoint".into(), Value::String("text_to_video".into()));
        let old = Sha256::digest(canonical_json(&Value::Object(doc)).as_bytes());
        let body = RequestBody::new(&request);
        assert_eq!(&request_digest(Endpoint::TextToVideo, &body)[..], &old[..8]);
        assert_eq!(body.fields(), request);
        assert_eq!(body.as_str(), canonical_json(&Value::Object(request)));
    }

    #[test]
    fn params_find_by_name_and_keep_one_value_per_name() {
        let p = Params::new(vec![
            (Arc::from("style"), Value::from("noir")),
            (Arc::from("aspect_ratio"), Value::from("1:1")),
            (Arc::from("aspect_ratio"), Value::from("16:9")),
        ]);
        assert_eq!(p.keys().collect::<Vec<_>>(), ["aspect_ratio", "style"]);
        assert_eq!(p.get("style"), Some(&Value::from("noir")));
        assert_eq!(p.get("model"), None);
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"aspect_ratio":"16:9","style":"noir"}"#
        );
    }

    #[test]
    fn canonical_json_sorts_keys() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":{"d":[1,{"z":0,"y":1}],"c":"x"}}"#).unwrap();
        assert_eq!(canonical_json(&a), r#"{"a":{"c":"x","d":[1,{"y":1,"z":0}]},"b":1}"#);
    }
}
