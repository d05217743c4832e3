//! Line and column for a path in a YAML document. serde_yaml gives values without positions, so
//! when (and only when) there is a problem to point at, the document is scanned once more with a
//! marking event parser and every node's path is indexed. Paths the index cannot see (inside an
//! alias or a merge) fall back to their nearest indexed ancestor.

use std::collections::HashMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Pos {
    pub line: u64,
    pub column: u64,
}

#[derive(Debug, Default)]
pub(super) struct Index {
    values: HashMap<String, Pos>,
    keys: HashMap<String, Pos>,
}

enum Frame {
    Seq {
        path: String,
        next: usize,
    },
    Map {
        path: String,
        pending_key: Option<(String, Pos)>,
        awaiting_key: bool,
    },
}

struct Builder {
    index: Index,
    stack: Vec<Frame>,
    depth_in_complex_key: usize,
}

pub(super) fn join_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

pub(super) fn join_index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

impl Builder {
    fn pos(mark: &Marker) -> Pos {
        Pos {
            line: mark.line() as u64,
            column: mark.col() as u64 + 1,
        }
    }

    /// The path of the node that starts now, advancing the parent's cursor; `None` for a key.
    fn next_path(&mut self, mark: &Marker, scalar_key: Option<&str>) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Seq { path, next }) => {
                let p = join_index(path, *next);
                *next += 1;
                Some(p)
            }
            Some(Frame::Map {
                path,
                pending_key,
                awaiting_key,
            }) => {
                if *awaiting_key {
                    *awaiting_key = false;
                    let key = scalar_key.unwrap_or("<complex key>").to_string();
                    let full = join_key(path, &key);
                    // The parser marks a block mapping's start after its first key; a mapping is
                    // where its first key is.
                    if let Some(start) = self.index.values.get_mut(path.as_str()) {
                        let here = Self::pos(mark);
                        if (here.line, here.column) < (start.line, start.column) {
                            *start = here;
                        }
                    }
                    self.index.keys.entry(full.clone()).or_insert(Self::pos(mark));
                    *pending_key = Some((full, Self::pos(mark)));
                    None
                } else {
                    *awaiting_key = true;
                    pending_key.take().map(|(p, _)| p)
                }
            }
        }
    }

    fn record(&mut self, path: &str, mark: &Marker) {
        self.index.values.entry(path.to_string()).or_insert(Self::pos(mark));
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.depth_in_complex_key > 0 {
            match ev {
                Event::SequenceStart(..) | Event::MappingStart(..) => self.depth_in_complex_key += 1,
                Event::SequenceEnd | Event::MappingEnd => self.depth_in_complex_key -= 1,
                _ => {}
            }
            return;
        }
        match ev {
            Event::Scalar(ref text, ..) => {
                if let Some(path) = self.next_path(&mark, Some(text)) {
                    self.record(&path, &mark);
                }
            }
            Event::Alias(_) => {
                if let Some(path) = self.next_path(&mark, None) {
                    self.record(&path, &mark);
                }
            }
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                let is_map = matches!(ev, Event::MappingStart(..));
                match self.next_path(&mark, None) {
                    Some(path) => {
                        self.record(&path, &mark);
                        self.stack.push(if is_map {
                            Frame::Map {
                                path,
                                pending_key: None,
                                awaiting_key: true,
                            }
                        } else {
                            Frame::Seq { path, next: 0 }
                        });
                    }
                    // A collection used as a mapping key: skip it whole.
                    None => self.depth_in_complex_key = 1,
                }
            }
            Event::SequenceEnd | Event::MappingEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

impl Index {
    /// Scans `text`; a document the marking parser rejects yields whatever was indexed before.
    pub(super) fn build(text: &str) -> Index {
        let mut builder = Builder {
            index: Index::default(),
            stack: Vec::new(),
            depth_in_complex_key: 0,
        };
        let mut parser = Parser::new_from_str(text);
        let _ = parser.load(&mut builder, false);
        builder.index
    }

    /// The position of `path` (its key when `key`), or of its nearest indexed ancestor.
    pub(super) fn find(&self, path: &str, key: bool) -> Option<Pos> {
        if key && let Some(pos) = self.keys.get(path) {
            return Some(*pos);
        }
        let mut current = path;
        loop {
            if let Some(pos) = self.values.get(current) {
                return Some(*pos);
            }
            if current.is_empty() {
                return None;
            }
            current = parent(current);
        }
    }
}

fn parent(path: &str) -> &str {
    let cut = path.rfind(['.', '[']).unwrap_or(0);
    &path[..cut]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_block_and_flow_nodes() {
        let text =
            "defaults:\n  model: kling-3.0\nprompts:\n  - \"a\"\n  - id: city\n    vars: { style: [noir, pop] }\n";
        let index = Index::build(text);
        assert_eq!(index.find("defaults.model", false), Some(Pos { line: 2, column: 10 }));
        assert_eq!(index.find("defaults.model", true), Some(Pos { line: 2, column: 3 }));
        assert_eq!(index.find("prompts[1].id", false), Some(Pos { line: 5, column: 9 }));
        assert_eq!(index.find("prompts[1]", false), Some(Pos { line: 5, column: 5 }));
        assert_eq!(index.find("", false), Some(Pos { line: 1, column: 1 }));
        assert_eq!(
            index.find("prompts[1].vars.style[1]", false),
            Some(Pos { line: 6, column: 27 })
        );
        // Unknown paths fall back to the nearest ancestor.
        assert_eq!(
            index.find("prompts[1].vars.nothing", false),
            index.find("prompts[1].vars", false)
        );
    }
}
