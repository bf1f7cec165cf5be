//! Names a user typed that are not known: one line with the closest valid ones, never the whole
//! list.

/// How many of the closest names an error shows.
const SHOWN: usize = 3;

/// The error for `given`, an unknown `kind` (`"metric"`, `"event"`), among `valid`: a "did you
/// mean" when one name is close, else the closest few, with how many there are in all.
pub fn unknown<'a>(kind: &str, given: &str, valid: impl IntoIterator<Item = &'a str>) -> String {
    let valid: Vec<&str> = valid.into_iter().collect();
    let near = closest(given, &valid);
    match near.first() {
        Some(&(best, d)) if d <= close_enough(given) => {
            format!("unknown {kind} `{given}`; did you mean `{best}`? ({} valid names)", valid.len())
        }
        _ => format!(
            "unknown {kind} `{given}`; closest of the {} valid names: {}",
            valid.len(),
            near.iter().map(|(n, _)| format!("`{n}`")).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// A typo's reach: a third of the name, at least two edits.
fn close_enough(given: &str) -> usize {
    (given.chars().count() / 3).max(2)
}

/// The [`SHOWN`] names nearest `given` by edits, nearest first (ties by name); a name that
/// contains `given` whole, or is contained in it, counts as one edit away.
fn closest<'a>(given: &str, valid: &[&'a str]) -> Vec<(&'a str, usize)> {
    let lower = given.to_lowercase();
    let mut scored: Vec<(&str, usize)> = valid
        .iter()
        .map(|&name| {
            let d = edits(&lower, &name.to_lowercase());
            let contains = !lower.is_empty() && (name.contains(lower.as_str()) || lower.contains(name));
            (name, if contains { d.min(1) } else { d })
        })
        .collect();
    scored.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(b.0)));
    scored.truncate(SHOWN);
    scored
}

/// Levenshtein distance over characters.
fn edits(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: [&str; 5] = ["max_429", "max_403", "largest_lease", "shortest_rest", "proxy_wait"];

    #[test]
    fn a_typo_gets_one_suggestion() {
        assert_eq!(
            unknown("metric", "max_49", NAMES),
            "unknown metric `max_49`; did you mean `max_429`? (5 valid names)"
        );
        assert_eq!(
            unknown("metric", "lease", NAMES),
            "unknown metric `lease`; did you mean `largest_lease`? (5 valid names)"
        );
    }

    #[test]
    fn nothing_close_gets_the_nearest_three_not_the_list() {
        let e = unknown("metric", "throughput", NAMES);
        assert!(e.starts_with("unknown metric `throughput`; closest of the 5 valid names: "), "{e}");
        assert_eq!(e.matches('`').count(), 2 + 2 * 3, "{e}");
    }

    #[test]
    fn edits_count_insertions_deletions_and_changes() {
        assert_eq!(edits("kitten", "sitting"), 3);
        assert_eq!(edits("", "abc"), 3);
        assert_eq!(edits("abc", "abc"), 0);
    }
}
