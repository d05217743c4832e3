//! Checks shared by the YAML and CSV readers: field names, endpoints, prompt ids, and the
//! conversion of a YAML node to the JSON value that will be sent.

use super::diagnostic::{Origin, Problem};
use super::suggest::did_you_mean;
use crate::kling::{Endpoint, FIELDS};
use serde_json::Value;

/// Keys a prompt entry, `defaults:` or a matrix may use besides request fields.
pub(super) const ENDPOINT_KEY: &str = "endpoint";

/// Longest prompt id, so job ids and file names stay short.
pub(super) const MAX_ID_LEN: usize = 40;

pub(super) fn request_field_names() -> impl Iterator<Item = &'static str> {
    FIELDS.iter().map(|f| f.name).chain(std::iter::once(ENDPOINT_KEY))
}

pub(super) use crate::kling::is_request_key;

/// A problem for an unknown key ("`{key}` is not {what}"), with a did-you-mean over `candidates`.
pub(super) fn unknown_key<'a>(
    origin: Origin,
    what: &str,
    key: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Problem {
    let problem = Problem::new(origin, format!("`{key}` is not {what}"));
    match did_you_mean(key, candidates) {
        Some(s) => problem.hint(format!("did you mean `{s}`?")),
        None => problem,
    }
}

/// Parses an endpoint name, or explains which ones exist.
pub(super) fn parse_endpoint(text: &str, origin: &Origin) -> Result<Endpoint, Problem> {
    text.parse().map_err(|_| {
        let names = Endpoint::ALL.map(Endpoint::as_str);
        Problem::new(origin.clone(), format!("unknown endpoint `{text}`"))
            .maybe_hint(did_you_mean(text, names).map(|s| format!("did you mean `{s}`?")))
            .hint(format!("endpoints are: {}", names.join(", ")))
    })
}

/// Checks a user-chosen prompt id: it names files, so it must be short and filesystem-safe.
pub(super) fn check_id(id: &str, origin: &Origin) -> Result<(), Problem> {
    let ok_chars = id
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    let ok_start = id
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok_chars && ok_start && id.len() <= MAX_ID_LEN {
        return Ok(());
    }
    let suggestion = crate::util::slug::slug(id, MAX_ID_LEN);
    let problem = Problem::new(
        origin.clone(),
        format!("id `{}` is not usable as a file name", id.escape_debug()),
    )
    .hint(format!(
        "ids use a-z, 0-9, `.`, `_` and `-`, start with a letter or digit, and have at most {MAX_ID_LEN} characters"
    ));
    Err(if suggestion.is_empty() {
        problem
    } else {
        problem.hint(format!("try `{suggestion}`"))
    })
}

/// Converts a YAML node to JSON. Tags and non-finite numbers have no JSON form.
pub(super) fn to_json(value: &serde_yaml::Value, origin: &Origin) -> Result<Value, Problem> {
    use serde_yaml::Value as Y;
    Ok(match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(*b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                serde_json::Number::from_f64(f)
                    .map(Value::Number)
                    .ok_or_else(|| Problem::new(origin.clone(), format!("{f} is not a usable number")))?
            }
        }
        Y::String(s) => Value::String(s.clone()),
        Y::Sequence(items) => Value::Array(items.iter().map(|i| to_json(i, origin)).collect::<Result<_, _>>()?),
        Y::Mapping(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                let key =
                    scalar_text(k).ok_or_else(|| Problem::new(origin.clone(), "mapping keys must be plain text"))?;
                out.insert(key, to_json(v, origin)?);
            }
            Value::Object(out)
        }
        Y::Tagged(tagged) => {
            return Err(Problem::new(
                origin.clone(),
                format!("YAML tags such as `{}` are not supported", tagged.tag),
            )
            .hint("remove the tag and write the plain value"));
        }
    })
}

/// The text of a scalar used as a key or a template value.
pub(super) fn scalar_text(value: &serde_yaml::Value) -> Option<String> {
    use serde_yaml::Value as Y;
    match value {
        Y::String(s) => Some(s.clone()),
        Y::Bool(b) => Some(b.to_string()),
        Y::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// What a YAML node is, for "expected X, found Y" messages.
pub(super) fn kind_of(value: &serde_yaml::Value) -> &'static str {
    use serde_yaml::Value as Y;
    match value {
        Y::Null => "nothing",
        Y::Bool(_) => "a boolean",
        Y::Number(_) => "a number",
        Y::String(_) => "a string",
        Y::Sequence(_) => "a list",
        Y::Mapping(_) => "a mapping",
        Y::Tagged(_) => "a tagged value",
    }
}
