//! Object storage as an output location (issue 19, first part): an `s3://bucket/prefix` address,
//! the store built from the standard environment as `object_store` reads it (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`), a
//! probe that writes and deletes an object before anything is spent, whole objects put at once, and
//! multipart uploads whose id the caller learns before the first part (to journal it) and which
//! stream with a BLAKE3 hash, in parts of at least 5 MiB, never holding the whole object.
//!

use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutPayload};
use std::collections::HashMap;
use std::sync::Arc;

/// The smallest part S3 takes (all but the last part of an upload).
pub const MIN_PART: usize = 5 * 1024 * 1024;

/// `s3://bucket/prefix`, as given to `--out`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketUrl {
    pub bucket: String,
    /// Without leading or trailing slashes; empty for the bucket's root.
    pub prefix: String,
}

impl BucketUrl {
    pub fn parse(text: &str) -> Result<BucketUrl, String> {
        let rest = text
            .strip_prefix("s3://")
            .ok_or_else(|| format!("`{text}` is not an s3:// address"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
        if bucket.len() < 3 || bucket.len() > 63 || !bucket.chars().all(valid) {
            return Err(format!(
                "`{bucket}` is not a bucket name (3–63 characters: a-z, 0-9, `-` and `.`)"
            ));
        }
        let prefix = prefix.trim_matches('/');
        if prefix.split('/').any(|p| p == "." || p == "..") {
            return Err(format!("the prefix `{prefix}` has a `.` or `..` part"));
        }
        Ok(BucketUrl {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }
}

impl std::fmt::Display for BucketUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "s3://{}", self.bucket)
        } else {
            write!(f, "s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

/// What an object store refused, by what the user can do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BucketError {
    /// The credentials were refused (or are missing): nothing can be written.
    #[error("the object store refused the credentials: {0}")]
    Credentials(String),
    #[error("the bucket `{bucket}` does not exist: {message}")]
    NoBucket { bucket: String, message: String },
    /// Worth another try: a 5xx, a reset, a timeout.
    #[error("the object store did not answer usefully: {0}")]
    Transient(String),
    #[error("the object store refused: {0}")]
    Refused(String),
    /// An endpoint on plain http, which the store client refuses unless told to allow it.
    #[error("AWS_ENDPOINT {endpoint} is plain http, which the object store client refuses unless AWS_ALLOW_HTTP=true")]
    PlainHttp { endpoint: String },
}

impl BucketError {
    pub fn hint(&self) -> &'static str {
        match self {
            BucketError::Credentials(_) => {
                "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_ENDPOINT for an S3-compatible server)"
            }
            BucketError::NoBucket { .. } => "create the bucket, or fix its name in --out",
            BucketError::Transient(_) => "try again; a rerun resumes",
            BucketError::Refused(_) => "check the bucket's permissions for this key",
            BucketError::PlainHttp { .. } => {
                "set AWS_ALLOW_HTTP=true to allow plain http (a local or trusted S3-compatible server), or give an https:// endpoint"
            }
        }
    }
}

/// An output location in object storage.
#[derive(Debug, Clone)]
pub struct Bucket {
    store: Arc<AmazonS3>,
    url: BucketUrl,
    /// Secrets to keep out of every message (the secret key, a session token).
    secrets: Vec<String>,
}

impl Bucket {
    /// The store for `url`, configured from the process's `AWS_*` environment.
    pub fn from_env(url: &BucketUrl) -> Result<Bucket, BucketError> {
        let config: HashMap<String, String> = std::env::vars().filter(|(k, _)| k.starts_with("AWS_")).collect();
        Bucket::from_config(url, &config)
    }

    /// The store for `url`, from `AWS_*` settings given as a map (the environment's names).
    pub fn from_config(url: &BucketUrl, config: &HashMap<String, String>) -> Result<Bucket, BucketError> {
        // The store client refuses a plain-http endpoint with a bare "builder error": say why first.
        let setting = |name: &str| {
            config
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().to_string())
        };
        if let Some(endpoint) = setting("AWS_ENDPOINT").or_else(|| setting("AWS_ENDPOINT_URL"))
            && endpoint.to_ascii_lowercase().starts_with("http://")
            && !setting("AWS_ALLOW_HTTP").is_some_and(|v| v.eq_ignore_ascii_case("true"))
        {
            // (Whatever an address carries before `@` stays out of the message.)
            let shown = match (endpoint.find("//"), endpoint.find('@')) {
                (Some(start), Some(at)) if at > start => format!("{}***{}", &endpoint[..start + 2], &endpoint[at..]),
                _ => endpoint,
            };
            return Err(BucketError::PlainHttp { endpoint: shown });
        }
        let mut builder = AmazonS3Builder::new().with_bucket_name(&url.bucket);
        let mut secrets = Vec::new();
        for (key, value) in config {
            let Ok(config_key) = key.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() else {
                continue;
            };
            if matches!(
                config_key,
                AmazonS3ConfigKey::SecretAccessKey | AmazonS3ConfigKey::Token
            ) && !value.is_empty()
            {
                secrets.push(value.clone());
            }
            builder = builder.with_config(config_key, value);
        }
        let store = builder.build().map_err(|e| {
            let message = scrub(&e.to_string(), &secrets);
            BucketError::Credentials(message)
        })?;
        Ok(Bucket {
            store: Arc::new(store),
            url: url.clone(),
            secrets,
        })
    }

    pub fn url(&self) -> &BucketUrl {
        &self.url
    }

    /// The object `name` under the prefix.
    fn path(&self, name: &str) -> ObjectPath {
        if self.url.prefix.is_empty() {
            ObjectPath::from(name)
        } else {
            ObjectPath::from(format!("{}/{name}", self.url.prefix))
        }
    }

    fn error(&self, e: object_store::Error) -> BucketError {
        classify(&self.url.bucket, &e, &self.secrets)
    }

    /// Writes and deletes a probe object: can this run store anything at all? Called before the
    /// first create, so a wrong key or a missing bucket costs nothing.
    pub async fn probe(&self) -> Result<(), BucketError> {
        // A listing first: a missing bucket is told apart (and nothing is written into one a lax
        // server would make on the fly).
        let prefix = (!self.url.prefix.is_empty()).then(|| ObjectPath::from(self.url.prefix.as_str()));
        self.store
            .list_with_delimiter(prefix.as_ref())
            .await
            .map_err(|e| self.error(e))?;
        let name = format!(".kling-batch-probe-{}", std::process::id());
        self.put(&name, b"probe".to_vec()).await?;
        self.store.delete(&self.path(&name)).await.map_err(|e| self.error(e))
    }

    /// Puts a whole object at once (one PUT: it appears whole or not at all).
    pub async fn put(&self, name: &str, bytes: Vec<u8>) -> Result<(), BucketError> {
        self.store
            .put(&self.path(name), PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(|e| self.error(e))
    }

    /// The size of object `name`, if it exists.
    pub async fn size(&self, name: &str) -> Result<Option<u64>, BucketError> {
        match self.store.head(&self.path(name)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Deletes object `name` (gone already is fine).
    pub async fn delete(&self, name: &str) -> Result<(), BucketError> {
        match self.store.delete(&self.path(name)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error(e)),
        }
    }

    /// The objects under `folder` (relative to the prefix), by their name relative to the prefix,
    /// with their sizes.
    pub async fn list_sizes(&self, folder: &str) -> Result<HashMap<String, u64>, BucketError> {
        use futures::TryStreamExt;
        let under = self.path(folder);
        let skip = if self.url.prefix.is_empty() {
            0
        } else {
            self.url.prefix.len() + 1
        };
        let objects: Vec<object_store::ObjectMeta> = self
            .store
            .list(Some(&under))
            .try_collect()
            .await
            .map_err(|e| self.error(e))?;
        Ok(objects
            .into_iter()
            .map(|m| (m.location.as_ref().get(skip..).unwrap_or("").to_string(), m.size))
            .collect())
    }

    /// Begins a multipart upload of `name`: its id, to be recorded before the first part.
    pub async fn begin(&self, name: &str) -> Result<String, BucketError> {
        self.store
            .create_multipart(&self.path(name))
            .await
            .map_err(|e| self.error(e))
    }

    /// Abandons an upload: its parts are deleted. An upload that no longer exists (completed, or
    /// aborted before) is not an error.
    pub async fn abort(&self, name: &str, upload_id: &str) -> Result<(), BucketError> {
        match self
            .store
            .abort_multipart(&self.path(name), &upload_id.to_string())
            .await
        {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Streams an upload: parts of `MIN_PART` bytes (the last may be smaller), hashed as they go.
    pub fn writer(&self, name: &str, upload_id: String) -> PartWriter {
        PartWriter {
            bucket: self.clone(),
            name: name.to_string(),
            upload_id,
            buffer: Vec::with_capacity(MIN_PART),
            parts: Vec::new(),
            in_flight: futures::stream::FuturesUnordered::new(),
            hasher: blake3::Hasher::new(),
            bytes: 0,
        }
    }
}

/// Parts sent at once per upload: the download goes on while they travel (memory: this many
/// parts, 5 MiB each, plus the one being filled).
pub const PARTS_IN_FLIGHT: usize = 3;

type PartResult = (usize, Result<PartId, object_store::Error>);

/// A multipart upload being written: bytes in, parts out, a few parts in flight.
pub struct PartWriter {
    bucket: Bucket,
    name: String,
    upload_id: String,
    buffer: Vec<u8>,
    /// Each part's id once sent, by index.
    parts: Vec<Option<PartId>>,
    in_flight: futures::stream::FuturesUnordered<futures::future::BoxFuture<'static, PartResult>>,
    hasher: blake3::Hasher,
    bytes: u64,
}

impl std::fmt::Debug for PartWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartWriter")
            .field("name", &self.name)
            .field("parts", &self.parts.len())
            .field("in_flight", &self.in_flight.len())
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

/// A finished upload: its size as the store reports it, and the BLAKE3 of what was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    pub bytes: u64,
    pub checksum: String,
}

impl PartWriter {
    pub async fn write(&mut self, mut data: &[u8]) -> Result<(), BucketError> {
        self.hasher.update(data);
        self.bytes += data.len() as u64;
        while !data.is_empty() {
            let room = MIN_PART - self.buffer.len();
            let take = room.min(data.len());
            self.buffer.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buffer.len() == MIN_PART {
                self.send_part().await?;
            }
        }
        Ok(())
    }

    /// Starts sending the buffer as the next part; waits while `PARTS_IN_FLIGHT` are travelling.
    async fn send_part(&mut self) -> Result<(), BucketError> {
        use futures::StreamExt;
        let part = std::mem::replace(&mut self.buffer, Vec::with_capacity(MIN_PART));
        let index = self.parts.len();
        self.parts.push(None);
        let store = Arc::clone(&self.bucket.store);
        let path = self.bucket.path(&self.name);
        let id = self.upload_id.clone();
        self.in_flight.push(Box::pin(async move {
            (index, store.put_part(&path, &id, index, PutPayload::from(part)).await)
        }));
        while self.in_flight.len() >= PARTS_IN_FLIGHT {
            if let Some(done) = self.in_flight.next().await {
                self.landed(done)?;
            }
        }
        Ok(())
    }

    fn landed(&mut self, (index, result): PartResult) -> Result<(), BucketError> {
        let id = result.map_err(|e| self.bucket.error(e))?;
        self.parts[index] = Some(id);
        Ok(())
    }

    /// Sends the last part, waits for every part, completes the upload, and checks the object's
    /// size.
    pub async fn finish(mut self) -> Result<Uploaded, BucketError> {
        use futures::StreamExt;
        if !self.buffer.is_empty() || self.parts.is_empty() {
            self.send_part().await?;
        }
        while let Some(done) = self.in_flight.next().await {
            self.landed(done)?;
        }
        let parts: Vec<PartId> = std::mem::take(&mut self.parts).into_iter().flatten().collect();
        let path = self.bucket.path(&self.name);
        self.bucket
            .store
            .complete_multipart(&path, &self.upload_id, parts)
            .await
            .map_err(|e| self.bucket.error(e))?;
        let stored = self.bucket.size(&self.name).await?;
        if stored != Some(self.bytes) {
            return Err(BucketError::Refused(format!(
                "the object holds {} bytes after the upload, not the {} sent",
                stored.map_or("no".to_string(), |n| n.to_string()),
                self.bytes
            )));
        }
        Ok(Uploaded {
            bytes: self.bytes,
            checksum: format!("blake3:{}", self.hasher.finalize().to_hex()),
        })
    }

    /// Gives the upload up: its parts are deleted (after the ones travelling have landed, so none
    /// arrives after the abort).
    pub async fn abort(mut self) -> Result<(), BucketError> {
        use futures::StreamExt;
        while self.in_flight.next().await.is_some() {}
        self.bucket.abort(&self.name, &self.upload_id).await
    }
}

/// An `object_store` error as the user can act on it, with every secret taken out of its text.
fn classify(bucket: &str, e: &object_store::Error, secrets: &[String]) -> BucketError {
    let message = scrub(&e.to_string(), secrets);
    let lower = message.to_ascii_lowercase();
    match e {
        object_store::Error::Unauthenticated { .. } | object_store::Error::PermissionDenied { .. } => {
            BucketError::Credentials(message)
        }
        _ if lower.contains("nosuchbucket") || lower.contains("bucket does not exist") => BucketError::NoBucket {
            bucket: bucket.to_string(),
            message,
        },
        _ if lower.contains("signaturedoesnotmatch")
            || lower.contains("invalidaccesskeyid")
            || lower.contains("accessdenied")
            || lower.contains("403 forbidden")
            || lower.contains("status: 403") =>
        {
            BucketError::Credentials(message)
        }
        _ if lower.contains("connection") || lower.contains("timed out") || lower.contains("status: 5") => {
            BucketError::Transient(message)
        }
        _ => BucketError::Refused(message),
    }
}

/// `text` with each secret replaced by `***`.
fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(secret.as_str(), "***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_addresses_are_parsed_or_refused_with_the_reason() {
        assert_eq!(
            BucketUrl::parse("s3://sweeps/lake/2026/").unwrap(),
            BucketUrl {
                bucket: "sweeps".into(),
                prefix: "lake/2026".into()
            }
        );
        assert_eq!(BucketUrl::parse("s3://sweeps").unwrap().prefix, "");
        assert!(BucketUrl::parse("gs://x/y").unwrap_err().contains("not an s3://"));
        assert!(
            BucketUrl::parse("s3://Big_Bucket/x")
                .unwrap_err()
                .contains("not a bucket name")
        );
        assert!(BucketUrl::parse("s3://sweeps/a/../b").unwrap_err().contains("`..`"));
        assert_eq!(
            BucketUrl::parse("s3://sweeps/lake/").unwrap().to_string(),
            "s3://sweeps/lake"
        );
        assert_eq!(
            scrub("key=abcd1234 and abcd1234", &["abcd1234".into()]),
            "key=*** and ***"
        );
    }
}
