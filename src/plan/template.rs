//! Prompt templates: `{name}` is replaced by the value of variable `name`; `{{` and `}}` are
//! literal braces. Only entries that declare `vars:` are templates, so prompts from elsewhere may
//! contain braces freely.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Var(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    /// A `{` that does not open `{name}` and is not doubled.
    StrayBrace { offset: usize },
}

fn is_name(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        let mut offset = 0;
        while let Some(i) = rest.find(['{', '}']) {
            literal.push_str(&rest[..i]);
            let tail = &rest[i..];
            let consumed = if tail.starts_with("{{") {
                literal.push('{');
                2
            } else if tail.starts_with("}}") {
                literal.push('}');
                2
            } else if let Some(inner) = tail.strip_prefix('{') {
                match inner.find('}') {
                    Some(end) if is_name(&inner[..end]) => {
                        if !literal.is_empty() {
                            pieces.push(Piece::Text(std::mem::take(&mut literal)));
                        }
                        pieces.push(Piece::Var(inner[..end].to_string()));
                        end + 2
                    }
                    _ => return Err(TemplateError::StrayBrace { offset: offset + i }),
                }
            } else {
                // A lone `}` is literal text.
                literal.push('}');
                1
            };
            offset += i + consumed;
            rest = &tail[consumed..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Ok(Template { pieces })
    }

    /// The variable names used, in order of first use.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for piece in &self.pieces {
            if let Piece::Var(n) = piece
                && !names.contains(&n.as_str())
            {
                names.push(n);
            }
        }
        names
    }

    /// The text with every variable replaced; unknown names are left as `{name}`.
    pub fn render(&self, values: &BTreeMap<&str, &str>) -> String {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Var(n) => match values.get(n.as_str()) {
                    Some(v) => out.push_str(v),
                    None => {
                        out.push('{');
                        out.push_str(n);
                        out.push('}');
                    }
                },
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_variables_and_escapes() {
        let t = Template::parse("A {style} street, {{literal}} }").unwrap();
        assert_eq!(t.names(), vec!["style"]);
        let values = BTreeMap::from([("style", "noir")]);
        assert_eq!(t.render(&values), "A noir street, {literal} }");
    }

    #[test]
    fn rejects_stray_open_brace() {
        assert_eq!(
            Template::parse("a { b").unwrap_err(),
            TemplateError::StrayBrace { offset: 2 }
        );
    }
}
