//! Words for a POSIX shell, for the commands the tool prints for a person to type: as they are
//! when plain, else quoted (by `shlex`, the maintained crate; a word holding a NUL byte, which no
//! shell word can, is single-quoted by hand and still shown).

/// `word` as one word for a POSIX shell.
pub fn quote(word: &str) -> String {
    match shlex::try_quote(word) {
        Ok(quoted) => quoted.into_owned(),
        Err(_) => format!("'{}'", word.replace('\'', "'\\''")),
    }
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn plain_words_stay_and_others_are_quoted_back_to_themselves() {
        assert_eq!(quote("runs/demo"), "runs/demo");
        for word in ["my runs/demo", "it's", "$HOME", "a;b", ""] {
            let quoted = quote(word);
            assert_eq!(shlex::split(&quoted), Some(vec![word.to_string()]), "{quoted}");
        }
    }
}
