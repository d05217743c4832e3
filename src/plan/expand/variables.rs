//! Template variables: the prompt's templates, and every assignment of their values.

use super::*;

/// Parses the text fields of a templated entry; `None` if a template is unusable.
pub(super) fn templates_of(
    prompt: &PromptEntry,
    subject: &str,
    problems: &mut Vec<Problem>,
) -> Option<BTreeMap<String, Template>> {
    let mut templates = BTreeMap::new();
    if prompt.vars.is_empty() {
        return Some(templates);
    }
    let before = problems.len();
    let names: Vec<&str> = prompt.vars.iter().map(|(n, _)| n.as_str()).collect();
    let mut used: Vec<String> = Vec::new();
    for (field, value) in &prompt.fields {
        let Some(text) = value.value.as_str() else { continue };
        match Template::parse(text) {
            Ok(t) => {
                for name in t.names() {
                    if names.contains(&name) {
                        used.push(name.to_string());
                    } else {
                        problems.push(
                            Problem::new(
                                value.origin.clone(),
                                format!("{field} uses {{{name}}}, which is not among this entry's vars"),
                            )
                            .subject(subject)
                            .maybe_hint(
                                did_you_mean(name, names.iter().copied()).map(|s| format!("did you mean {{{s}}}?")),
                            )
                            .hint("write {{ and }} for literal braces"),
                        );
                    }
                }
                templates.insert(field.clone(), t);
            }
            Err(TemplateError::StrayBrace { offset }) => problems.push(
                Problem::new(
                    value.origin.clone(),
                    format!(
                        "{field} has a `{{` at character {} that does not start a {{variable}}",
                        offset + 1
                    ),
                )
                .subject(subject)
                .hint("write {{ for a literal brace"),
            ),
        }
    }
    for (name, values) in &prompt.vars {
        if !used.contains(name) {
            let origin = values.first().map_or(prompt.origin.clone(), |v| v.origin.clone());
            problems.push(
                Problem::new(
                    origin,
                    format!("variable `{name}` is not used, so its values would make identical jobs"),
                )
                .subject(subject)
                .hint(format!("write {{{name}}} in the prompt, or remove the variable")),
            );
        }
    }
    (problems.len() == before).then_some(templates)
}

/// Every combination of the variables' values (one empty assignment when there are none).
pub(super) fn assignments(vars: &[(String, Vec<Sourced<String>>)]) -> Vec<Vec<(String, Sourced<String>)>> {
    let mut out: Vec<Vec<(String, Sourced<String>)>> = vec![Vec::new()];
    for (name, values) in vars {
        out = out
            .iter()
            .flat_map(|prefix| {
                values.iter().map(move |v| {
                    let mut next = prefix.clone();
                    next.push((name.clone(), v.clone()));
                    next
                })
            })
            .collect();
    }
    out
}
