//! One HTTP `Range` header against a file of known length: what the simulator's video route and
//! the review app's video route both answer with.

/// `bytes=a-b`, `bytes=a-` or `bytes=-n` against a file of `len` bytes: `Ok(None)` when there is
/// no usable range header (serve it all), `Err(Unsatisfiable)` when the range cannot be satisfied.
/// The range cannot be satisfied (answered 416).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsatisfiable;

pub fn parse_range(value: Option<&str>, len: u64) -> Result<Option<(u64, u64)>, Unsatisfiable> {
    let Some(spec) = value.and_then(|v| v.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None); // several ranges: answer with the whole file, as many servers do
    }
    let (a, b) = spec.split_once('-').ok_or(Unsatisfiable)?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().map_err(|_| Unsatisfiable)?;
            if n == 0 {
                return Err(Unsatisfiable);
            }
            (len.saturating_sub(n), len)
        }
        (start, "") => (start.parse().map_err(|_| Unsatisfiable)?, len),
        (start, end) => {
            let (s, e): (u64, u64) = (
                start.parse().map_err(|_| Unsatisfiable)?,
                end.parse().map_err(|_| Unsatisfiable)?,
            );
            if e < s {
                return Err(Unsatisfiable);
            }
            (s, e.saturating_add(1).min(len))
        }
    };
    if start >= len {
        Err(Unsatisfiable)
    } else {
        Ok(Some((start, end)))
    }
}

#[cfg(test)]
mod tests {
    use super::{Unsatisfiable, parse_range};

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 100), Ok(None));
        assert_eq!(parse_range(Some("bytes=10-19"), 100), Ok(Some((10, 20))));
        assert_eq!(parse_range(Some("bytes=90-"), 100), Ok(Some((90, 100))));
        assert_eq!(parse_range(Some("bytes=-10"), 100), Ok(Some((90, 100))));
        assert_eq!(parse_range(Some("bytes=50-500"), 100), Ok(Some((50, 100))));
        assert_eq!(parse_range(Some("bytes=100-"), 100), Err(Unsatisfiable));
        assert_eq!(parse_range(Some("bytes=20-10"), 100), Err(Unsatisfiable));
        assert_eq!(parse_range(Some("items=0-1"), 100), Ok(None));
    }
}
