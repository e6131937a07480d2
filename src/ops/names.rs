//! Matching a spoken name ("build two", "the web server") to what people named their
//! resources ("build-2", "web-server"): case, spacing and punctuation do not matter, and
//! numbers may be spoken as words.

/// Words for numbers, as Alexa transcribes them.
const UNITS: &[(&str, u32)] = &[
    ("zero", 0),
    ("oh", 0),
    ("one", 1),
    ("two", 2),
    ("three", 3),
    ("four", 4),
    ("five", 5),
    ("six", 6),
    ("seven", 7),
    ("eight", 8),
    ("nine", 9),
    ("ten", 10),
    ("eleven", 11),
    ("twelve", 12),
    ("thirteen", 13),
    ("fourteen", 14),
    ("fifteen", 15),
    ("sixteen", 16),
    ("seventeen", 17),
    ("eighteen", 18),
    ("nineteen", 19),
];
const TENS: &[(&str, u32)] = &[
    ("twenty", 20),
    ("thirty", 30),
    ("forty", 40),
    ("fifty", 50),
    ("sixty", 60),
    ("seventy", 70),
    ("eighty", 80),
    ("ninety", 90),
];
const FILLERS: &[&str] = &["the", "my", "a", "an", "our"];

fn lookup(table: &[(&str, u32)], word: &str) -> Option<u32> {
    table.iter().find(|(w, _)| *w == word).map(|(_, n)| *n)
}

/// A canonical form for comparing names: lower-case letters and digits only, number words
/// turned into digits, leading fillers ("the", "my") dropped.
pub fn normalise(name: &str) -> String {
    let lower = name.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let start = words.iter().take_while(|w| FILLERS.contains(w)).count();
    let mut out = String::new();
    let mut i = start;
    while i < words.len() {
        let word = words[i];
        if let Some(tens) = lookup(TENS, word) {
            match words.get(i + 1).and_then(|next| lookup(UNITS, next)) {
                Some(unit) if (1..10).contains(&unit) => {
                    out.push_str(&(tens + unit).to_string());
                    i += 2;
                    continue;
                }
                _ => out.push_str(&tens.to_string()),
            }
        } else if let Some(unit) = lookup(UNITS, word) {
            out.push_str(&unit.to_string());
        } else {
            out.push_str(word);
        }
        i += 1;
    }
    out
}

/// The outcome of matching a spoken name.
#[derive(Debug, PartialEq, Eq)]
pub enum Match<T> {
    /// Exactly one fits.
    One(T),
    /// Several fit equally well.
    Many(Vec<T>),
    /// Nothing fits.
    None,
}

/// Finds the items whose name matches `spoken`: exact (normalised) matches first, else
/// names that start with or contain what was said.
pub fn find<T: Clone>(spoken: &str, items: &[T], name: impl Fn(&T) -> &str) -> Match<T> {
    let wanted = normalise(spoken);
    if wanted.is_empty() {
        return Match::None;
    }
    let exact: Vec<T> = items
        .iter()
        .filter(|i| normalise(name(i)) == wanted)
        .cloned()
        .collect();
    let candidates = if exact.is_empty() {
        items
            .iter()
            .filter(|i| {
                let have = normalise(name(i));
                !have.is_empty() && (have.contains(&wanted) || wanted.contains(&have))
            })
            .cloned()
            .collect()
    } else {
        exact
    };
    match candidates.len() {
        0 => Match::None,
        1 => candidates
            .into_iter()
            .next()
            .map_or(Match::None, Match::One),
        _ => Match::Many(candidates),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spoken_forms_normalise_like_written_ones() {
        assert_eq!(normalise("build two"), normalise("build-2"));
        assert_eq!(normalise("the Web Server"), normalise("web-server"));
        assert_eq!(normalise("web_server"), "webserver");
        assert_eq!(normalise("db twenty one"), "db21");
        assert_eq!(normalise("api twenty"), "api20");
        assert_eq!(normalise("Node 7"), "node7");
    }

    #[test]
    fn exact_matches_win_over_partial_ones() {
        let names = ["web-1", "web-2", "web", "build-2"];
        assert_eq!(find("web", &names, |n| n), Match::One("web"));
        assert_eq!(find("build two", &names, |n| n), Match::One("build-2"));
        assert_eq!(find("web one", &names, |n| n), Match::One("web-1"));
    }

    #[test]
    fn ambiguous_and_unknown_names_are_reported() {
        let names = ["web-1", "web-2", "db"];
        assert_eq!(
            find("we", &names, |n| n),
            Match::Many(vec!["web-1", "web-2"])
        );
        assert_eq!(find("cache", &names, |n| n), Match::None);
        assert_eq!(find("the", &names, |n| n), Match::None);
    }
}
