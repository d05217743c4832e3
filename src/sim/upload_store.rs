//! The simulator's uploads as data: what `prepare` was told, what a PUT delivered, and the files
//! confirmed, each with its URL's life. The HTTP side is `uploads`.

use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, SystemTime};

/// Uploads in progress and confirmed files.
#[derive(Debug, Default)]
pub(super) struct Uploads {
    /// signed id → what `prepare` was told, and whether a PUT delivered exactly that.
    pub(super) prepared: HashMap<String, Prepared>,
    /// token in the file's URL → the file.
    pub(super) confirmed: HashMap<String, Confirmed>,
    pub(super) next: u64,
}

#[derive(Debug, Clone)]
pub(super) struct Prepared {
    pub(super) filename: String,
    pub(super) byte_size: u64,
    pub(super) checksum: String,
    pub(super) content_type: String,
    pub(super) delivered: bool,
}

#[derive(Debug, Clone)]
pub(super) struct Confirmed {
    file_name: String,
    size: u64,
    mime: String,
    created: SystemTime,
    expires: SystemTime,
}

fn rfc3339(t: SystemTime) -> String {
    crate::util::time_format::rfc3339(t)
}

/// What a confirmed upload answers (§14), its dates on a clock `offset` seconds from this
/// machine's (the service's clock is not the client's).
pub(super) fn file_view(base: &str, token: &str, file: &Confirmed, offset: i64) -> Value {
    let shift = |t: SystemTime| {
        let by = Duration::from_secs(offset.unsigned_abs());
        if offset < 0 {
            t.checked_sub(by).unwrap_or(t)
        } else {
            t + by
        }
    };
    json!({
        "file_name": file.file_name,
        "url": format!("{base}/uploaded/{token}"),
        "size_bytes": file.size,
        "mime_type": file.mime,
        "created_at": rfc3339(shift(file.created)),
        "expires_at": rfc3339(shift(file.expires)),
    })
}

impl Uploads {
    pub(super) fn confirm(&mut self, file_name: String, size: u64, mime: String, ttl: u64) -> (String, Confirmed) {
        self.next += 1;
        let token = format!("u{:08}", self.next);
        let created = SystemTime::now();
        let file = Confirmed {
            file_name,
            size,
            mime,
            created,
            expires: created + Duration::from_secs(ttl),
        };
        self.confirmed.insert(token.clone(), file.clone());
        (token, file)
    }

    /// Whether `url` names a confirmed upload of this simulator that has not expired; `None`
    /// when it is not an upload URL of ours at all.
    pub(super) fn usable(&self, base: &str, url: &str) -> Option<bool> {
        if base.is_empty() {
            return None;
        }
        let token = url.strip_prefix(base)?.strip_prefix("/uploaded/")?;
        Some(self.confirmed.get(token).is_some_and(|f| SystemTime::now() < f.expires))
    }

    /// Confirmed uploads not expired yet.
    pub(super) fn live(&self) -> u64 {
        let now = SystemTime::now();
        self.confirmed.values().filter(|f| now < f.expires).count() as u64
    }
}
