//! "Did you mean": the closest known name by edit distance, above a similarity floor.

/// The candidate closest to `word`, if it is close enough to be a likely typo.
pub fn closest<'a, I>(word: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let word_lower = word.to_lowercase();
    let mut best: Option<(usize, &'a str)> = None;
    for candidate in candidates {
        let distance = levenshtein(&word_lower, &candidate.to_lowercase());
        // Allow about one edit per three characters, at least one.
        let limit = (candidate.chars().count().max(word.chars().count()) / 3).max(1);
        if distance <= limit && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, c)| c)
}

/// Edit distance counting insertions, deletions, substitutions and
/// transpositions of adjacent characters as one edit each.
fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev2 = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                cur[j] = cur[j].min(prev2[j - 2] + 1);
            }
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_typos_and_transpositions() {
        let words = ["address", "backend", "listener"];
        assert_eq!(closest("adress", words), Some("address"));
        assert_eq!(closest("backnd", words), Some("backend"));
        assert_eq!(closest("listenre", words), Some("listener"));
        assert_eq!(closest("LISTENER", words), Some("listener"));
    }

    #[test]
    fn ignores_unrelated_words() {
        assert_eq!(closest("queue", ["address", "backend"]), None);
        assert_eq!(closest("x", ["mx"]), Some("mx"));
        assert_eq!(closest("ab", ["xyz"]), None);
    }
}
