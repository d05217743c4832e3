//! Local files named in a manifest's media fields (contract §14): found, checked and hashed before
//! anything is planned or spent. The stage between reading a manifest and expanding it, and the
//! only one of the three that touches the disk: expansion stays pure, given what this found.
//!
//! A value of a media field is a local file when it is not an http(s) URL: a path relative to the
//! manifest's folder (or `file://` and an absolute path). In a prompt entry a pattern (`*`, `?`,
//! `[…]`, `**`) names every file it matches, one job each. Every file must exist, be a regular,
//! readable file no larger than `--max-input-bytes`, and look like what its field takes (PNG,
//! JPEG or WebP for images; MP4 or MOV for videos; MP3, WAV, M4A or AAC for audio). A job names
//! a file by its content (`kb-local://` and 32 hex of its BLAKE3 hash), so touching a file changes
//! nothing and editing it makes a new job; the runner uploads it and sends the upload's URL.

use crate::manifest::{Manifest, Origin, Problem, Sourced};
use crate::util::within::Within;
use serde_json::Value;
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Files larger than this are refused unless `--max-input-bytes` says otherwise (2 GiB: the
/// largest reference video a sweep is likely to use, streamed, never held in memory).
pub const DEFAULT_MAX_INPUT_BYTES: u64 = 2 << 30;

/// What a job's request holds in place of a local file until it is uploaded.
pub use crate::kling::LOCAL_FILE_PLACEHOLDER as PLACEHOLDER;

/// What a media field takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Image,
    Video,
    Audio,
}

impl Kind {
    fn formats(self) -> &'static str {
        match self {
            Kind::Image => "a PNG, JPEG or WebP image",
            Kind::Video => "an MP4 or MOV video",
            Kind::Audio => "an MP3, WAV, M4A or AAC audio file",
        }
    }

    /// Whether a file's first bytes are one of this kind's formats.
    fn matches(self, head: &[u8]) -> bool {
        let at = |offset: usize, magic: &[u8]| head.get(offset..offset + magic.len()) == Some(magic);
        let iso = at(4, b"ftyp");
        match self {
            Kind::Image => at(0, b"\x89PNG\r\n\x1a\n") || at(0, b"\xff\xd8\xff") || (at(0, b"RIFF") && at(8, b"WEBP")),
            Kind::Video => iso || at(4, b"moov") || at(4, b"mdat") || at(4, b"wide") || at(4, b"free"),
            Kind::Audio => {
                let sync = head.len() >= 2 && head[0] == 0xff && head[1] & 0xe0 == 0xe0;
                at(0, b"ID3") || sync || (at(0, b"RIFF") && at(8, b"WAVE")) || iso
            }
        }
    }
}

/// The request fields that take media and may name local files (contract §14). `callback_url`
/// and nested fields never do.
pub const MEDIA_FIELDS: [(&str, Kind); 7] = [
    ("first_frame_image_url", Kind::Image),
    ("last_frame_image_url", Kind::Image),
    ("source_image_url", Kind::Image),
    ("reference_image_urls", Kind::Image),
    ("source_audio_url", Kind::Audio),
    ("reference_video_url", Kind::Video),
    ("source_video_url", Kind::Video),
];

pub fn media_kind(field: &str) -> Option<Kind> {
    MEDIA_FIELDS
        .iter()
        .find(|(name, _)| *name == field)
        .map(|(_, kind)| *kind)
}

/// Whether a media field's value names a local file (or pattern) rather than a URL.
pub fn is_local(value: &str) -> bool {
    let lower = value.trim_start().to_ascii_lowercase();
    !value.trim().is_empty()
        && !lower.starts_with("http://")
        && !lower.starts_with("https://")
        && !lower.starts_with(PLACEHOLDER)
}

fn is_pattern(value: &str) -> bool {
    value.contains(['*', '?', '['])
}

/// One local file, as the manifest wrote it and as it is on disk.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LocalFile {
    /// The path as written (for a pattern's match: relative to the manifest's folder).
    pub written: String,
    #[serde(skip)]
    pub path: PathBuf,
    pub bytes: u64,
    /// BLAKE3 of the content, hex.
    pub hash: String,
    pub kind: Kind,
}

impl LocalFile {
    /// What the request holds until the file is uploaded: its content, not its name.
    pub fn placeholder(&self) -> String {
        format!("{PLACEHOLDER}{}", &self.hash[..32])
    }

    /// The file name without its extension, for job ids and reports.
    pub fn stem(&self) -> String {
        Path::new(&self.written)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// Every local file a manifest names, and what each prompt entry's patterns matched.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub files: Vec<LocalFile>,
    by_written: HashMap<String, usize>,
    by_placeholder: HashMap<String, usize>,
    /// prompt index → (field, the written paths of its matches, sorted).
    patterns: HashMap<usize, Vec<(String, Vec<String>)>>,
}

impl Inputs {
    /// The file a value names, by what was written.
    pub fn file(&self, written: &str) -> Option<&LocalFile> {
        self.by_written.get(written).map(|i| &self.files[*i])
    }

    /// A prompt entry's patterns and their matches.
    pub fn patterns(&self, prompt: usize) -> &[(String, Vec<String>)] {
        self.patterns.get(&prompt).map_or(&[], Vec::as_slice)
    }

    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }

    /// The file behind a placeholder.
    pub fn by_placeholder(&self, placeholder: &str) -> Option<&LocalFile> {
        self.by_placeholder.get(placeholder).map(|i| &self.files[*i])
    }
}

/// Finds, checks and hashes every local file `manifest` names. Every problem is reported, each at
/// the value that named the file.
pub fn gather(manifest: &Manifest, max_bytes: u64) -> Result<Inputs, Vec<Problem>> {
    let (inputs, problems) = gather_all(manifest, max_bytes, None);
    if problems.is_empty() { Ok(inputs) } else { Err(problems) }
}

/// `gather`, keeping what was found beside the problems: a pattern that matched is expanded
/// whatever another entry's file is, so each problem is reported at its own place. With `within`,
/// a file or pattern that leads outside that folder is refused before it is opened or listed, and
/// the refusal says nothing of what is there.
pub fn gather_all(manifest: &Manifest, max_bytes: u64, within: Option<&Within>) -> (Inputs, Vec<Problem>) {
    let folder = manifest.path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut gathering = Gathering {
        folder,
        max_bytes,
        within,
        inputs: Inputs::default(),
        by_path: HashMap::new(),
        problems: Vec::new(),
    };
    for (name, value) in &manifest.defaults {
        gathering.value(name, value, None);
    }
    for (index, prompt) in manifest.prompts.iter().enumerate() {
        for (name, value) in &prompt.fields {
            gathering.value(name, value, Some(index));
        }
    }
    for (name, values) in &manifest.matrix.axes {
        for value in values {
            gathering.value(name, value, None);
        }
    }
    for entry in manifest.matrix.include.iter().chain(&manifest.matrix.exclude) {
        for (name, value) in &entry.fields {
            gathering.value(name, value, None);
        }
    }
    (gathering.inputs, gathering.problems)
}

struct Gathering<'a> {
    folder: PathBuf,
    max_bytes: u64,
    within: Option<&'a Within>,
    inputs: Inputs,
    /// Files already read, by where they are (one read per file however often it is named).
    by_path: HashMap<PathBuf, Result<LocalFile, String>>,
    problems: Vec<Problem>,
}

impl Gathering<'_> {
    fn value(&mut self, field: &str, value: &Sourced<Value>, prompt: Option<usize>) {
        let Some(kind) = media_kind(field) else { return };
        let texts: Vec<&str> = match &value.value {
            Value::String(s) => vec![s.as_str()],
            Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
            _ => return,
        };
        for text in texts.into_iter().filter(|t| is_local(t)) {
            if is_pattern(text) {
                match prompt {
                    Some(index) if value.value.is_string() => self.pattern(field, kind, text, &value.origin, index),
                    _ => self.problems.push(
                        Problem::new(
                            value.origin.clone(),
                            format!("{field}: `{text}` is a pattern; patterns work only in a prompt entry's own field"),
                        )
                        .hint("move the pattern into the prompt entry, or list the files"),
                    ),
                }
            } else {
                self.file(field, kind, text, &value.origin);
            }
        }
    }

    fn pattern(&mut self, field: &str, kind: Kind, text: &str, origin: &Origin, prompt: usize) {
        let full = self.folder.join(text);
        if self.within.is_some_and(|w| !w.admits_pattern(&full)) {
            self.outside(field, text, origin);
            return;
        }
        let options = glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: true,
        };
        let mut matches: Vec<PathBuf> = match glob::glob_with(&full.to_string_lossy(), options) {
            Ok(paths) => paths.filter_map(Result::ok).filter(|p| p.is_file()).collect(),
            Err(e) => {
                self.problems.push(
                    Problem::new(
                        origin.clone(),
                        format!("{field}: `{text}` is not a usable pattern: {}", e.msg),
                    )
                    .hint("patterns take *, ?, [abc] and ** (any folders)"),
                );
                return;
            }
        };
        matches.sort();
        if matches.is_empty() {
            self.problems.push(
                Problem::new(origin.clone(), format!("{field}: no file matches `{text}`")).hint(format!(
                    "patterns are relative to the manifest's folder ({})",
                    self.shown_folder()
                )),
            );
            return;
        }
        let mut written = Vec::with_capacity(matches.len());
        for path in matches {
            let name = path.strip_prefix(&self.folder).map_or_else(
                |_| path.to_string_lossy().into_owned(),
                |p| p.to_string_lossy().replace('\\', "/"),
            );
            self.file(field, kind, &name, origin);
            written.push(name);
        }
        self.inputs
            .patterns
            .entry(prompt)
            .or_default()
            .push((field.to_string(), written));
    }

    /// A name that leads outside the folder files must lie in: refused, saying nothing of it.
    fn outside(&mut self, field: &str, written: &str, origin: &Origin) {
        self.problems.push(
            Problem::new(
                origin.clone(),
                format!("{field}: `{written}` {}", crate::util::within::OUTSIDE),
            )
            .hint("put the file inside the runs folder and name it relative to the manifest (or give an http(s) URL)"),
        );
    }

    fn shown_folder(&self) -> String {
        if self.folder.as_os_str().is_empty() {
            ".".into()
        } else {
            self.folder.display().to_string()
        }
    }

    fn file(&mut self, field: &str, kind: Kind, written: &str, origin: &Origin) {
        if self.inputs.by_written.contains_key(written) {
            return;
        }
        let mut path = match written.strip_prefix("file://") {
            Some(absolute) => PathBuf::from(absolute),
            None => self.folder.join(written),
        };
        if let Some(within) = self.within {
            match within.check(&path) {
                Ok(inside) => path = inside,
                Err(_) => {
                    self.outside(field, written, origin);
                    return;
                }
            }
        }
        let known = self.by_path.get(&path).cloned();
        let outcome = match known {
            Some(outcome) => outcome,
            None => {
                let outcome = self.read(kind, written, &path);
                self.by_path.insert(path.clone(), outcome.clone());
                outcome
            }
        };
        match outcome {
            Ok(mut file) => {
                if file.kind != kind {
                    if !kind.matches(&head(&path)) {
                        self.problems.push(
                            Problem::new(origin.clone(), format!("{field}: {written} is not {}", kind.formats()))
                                .hint(format!("{field} takes {}", kind.formats())),
                        );
                        return;
                    }
                    file.kind = kind;
                }
                file.written = written.to_string();
                let index = self.inputs.files.len();
                self.inputs.by_written.insert(written.to_string(), index);
                self.inputs.by_placeholder.entry(file.placeholder()).or_insert(index);
                self.inputs.files.push(file);
            }
            Err(message) => {
                let hint = if message.contains("does not exist") {
                    format!(
                        "paths are relative to the manifest's folder ({}); or give an http(s) URL",
                        self.shown_folder()
                    )
                } else if message.contains("is a folder") {
                    format!(
                        "name a file in it, or a pattern such as {}/*.png",
                        written.trim_end_matches('/')
                    )
                } else if message.contains("--max-input-bytes") {
                    "raise --max-input-bytes, or use a smaller file".into()
                } else if message.contains("cannot be read") {
                    "check the file's permissions".into()
                } else {
                    format!("{field} takes {}", kind.formats())
                };
                self.problems
                    .push(Problem::new(origin.clone(), format!("{field}: {message}")).hint(hint));
            }
        }
    }

    /// Checks and hashes one file, or says what is wrong with it.
    fn read(&self, kind: Kind, written: &str, path: &Path) -> Result<LocalFile, String> {
        let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => format!("{written} does not exist"),
            _ => format!("{written} cannot be read: {e}"),
        })?;
        if meta.is_dir() {
            return Err(format!("{written} is a folder, not a file"));
        }
        if !meta.is_file() {
            return Err(format!("{written} is not a regular file"));
        }
        if meta.len() > self.max_bytes {
            return Err(format!(
                "{written} is {} bytes, above --max-input-bytes ({})",
                meta.len(),
                self.max_bytes
            ));
        }
        if meta.len() == 0 {
            return Err(format!("{written} is empty"));
        }
        let mut file = std::fs::File::open(path).map_err(|e| format!("{written} cannot be read: {e}"))?;
        let mut hasher = blake3::Hasher::new();
        let mut buffer = vec![0u8; 1 << 20];
        let mut first: Vec<u8> = Vec::new();
        loop {
            let n = file
                .read(&mut buffer)
                .map_err(|e| format!("{written} cannot be read: {e}"))?;
            if n == 0 {
                break;
            }
            if first.len() < 16 {
                first.extend_from_slice(&buffer[..n.min(16 - first.len())]);
            }
            hasher.update(&buffer[..n]);
        }
        if !kind.matches(&first) {
            let shown: String = first
                .iter()
                .take(8)
                .map(|b| {
                    if b.is_ascii_graphic() || *b == b' ' {
                        *b as char
                    } else {
                        '.'
                    }
                })
                .collect();
            return Err(format!(
                "{written} does not look like {} (it starts with `{shown}`)",
                kind.formats()
            ));
        }
        Ok(LocalFile {
            written: written.to_string(),
            path: path.to_path_buf(),
            bytes: meta.len(),
            hash: hasher.finalize().to_hex().to_string(),
            kind,
        })
    }
}

/// A file's first bytes, for a second field of another kind naming the same file.
fn head(path: &Path) -> Vec<u8> {
    let mut first = vec![0u8; 16];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut first))
        .unwrap_or(0);
    first.truncate(n);
    first
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_tell_the_kinds_apart() {
        assert!(Kind::Image.matches(b"\x89PNG\r\n\x1a\nrest"));
        assert!(Kind::Image.matches(b"\xff\xd8\xff\xe0rest"));
        assert!(Kind::Image.matches(b"RIFF\0\0\0\0WEBPVP8 "));
        assert!(!Kind::Image.matches(b"hello world, I am text"));
        assert!(Kind::Video.matches(b"\0\0\0\x18ftypmp42"));
        assert!(!Kind::Video.matches(b"\x89PNG\r\n\x1a\n"));
        assert!(Kind::Audio.matches(b"ID3\x03\0\0\0"));
        assert!(Kind::Audio.matches(b"RIFF\0\0\0\0WAVEfmt "));
        assert!(Kind::Audio.matches(b"\xff\xf1\x50\x80"));
        assert!(!Kind::Audio.matches(b"plain text"));
    }

    #[test]
    fn urls_and_placeholders_are_not_local() {
        assert!(is_local("photos/a.png"));
        assert!(is_local("file:///tmp/a.png"));
        assert!(!is_local("https://x.io/a.png"));
        assert!(!is_local("HTTP://x.io/a.png"));
        assert!(!is_local("kb-local://0123"));
        assert!(!is_local("  "));
    }
}
