//! Readable, filesystem-safe fragments of free text, for ids.

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
}
