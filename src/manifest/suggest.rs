//! "Did you mean" for misspelt keys and values.

/// The candidate closest to `input`, if it is close enough to be a likely typo.
pub fn did_you_mean<'a, I>(input: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    let needle = input.trim().to_ascii_lowercase();
    if needle.is_empty() {
        return None;
    }
    let mut best: Option<(f64, usize, &str)> = None;
    for candidate in candidates {
        let lower = candidate.to_ascii_lowercase();
        if lower == needle {
            return Some(candidate.to_string());
        }
        // Optimal string alignment: a swapped pair of letters (`modle`) counts as one edit.
        let distance = strsim::osa_distance(&needle, &lower);
        let longest = needle.chars().count().max(lower.chars().count());
        let mut score = 1.0 - distance as f64 / longest as f64;
        // `1080` → `1080p`, `kling-3` → `kling-3.0`: a prefix of a candidate is a strong hint.
        if lower.starts_with(&needle) || needle.starts_with(&lower) {
            score = score.max(0.75);
        }
        // On a tie, the candidate closest in length wins (`modle` → `model`, not `mode`).
        let length_gap = needle.len().abs_diff(lower.len());
        if best.is_none_or(|(s, gap, _)| score > s || (score == s && length_gap < gap)) {
            best = Some((score, length_gap, candidate));
        }
    }
    best.filter(|(score, _, _)| *score >= 0.6)
        .map(|(_, _, c)| c.to_string())
}

#[cfg(test)]
mod tests {
    use super::did_you_mean;

    #[test]
    fn finds_typos_and_prefixes() {
        let fields = ["duration_seconds", "aspect_ratio", "output_resolution"];
        assert_eq!(
            did_you_mean("duraton_seconds", fields).as_deref(),
            Some("duration_seconds")
        );
        assert_eq!(did_you_mean("1080", ["720p", "1080p", "4k"]).as_deref(), Some("1080p"));
        assert_eq!(did_you_mean("banana", fields), None);
        assert_eq!(did_you_mean("modle", ["mode", "model"]).as_deref(), Some("model"));
    }
}
