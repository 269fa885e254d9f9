//! HTML escaping and the review desk's reason-word highlighting.

use std::collections::HashSet;

/// Text safe to put in element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `text` escaped, with every word that is one of `words` (case-insensitively) in `<mark>`.
/// Words are runs of letters and digits, so "TPS," marks "TPS" and leaves the comma.
pub fn highlight(text: &str, words: &[String]) -> String {
    let wanted: HashSet<String> = words.iter().map(|w| w.to_lowercase()).collect();
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text;
    while !rest.is_empty() {
        let is_word = rest.chars().next().is_some_and(char::is_alphanumeric);
        let end = rest
            .char_indices()
            .find(|(_, c)| c.is_alphanumeric() != is_word)
            .map_or(rest.len(), |(i, _)| i);
        let (run, tail) = rest.split_at(end);
        if is_word && wanted.contains(&run.to_lowercase()) {
            out.push_str("<mark>");
            out.push_str(&escape(run));
            out.push_str("</mark>");
        } else {
            out.push_str(&escape(run));
        }
        rest = tail;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reason_words_are_marked_and_markup_escaped() {
        let words = vec!["dicoblos".to_owned(), "TPS".to_owned()];
        assert_eq!(
            highlight("Surat <b>DICOBLOS</b> di tps, sebarkan!", &words),
            "Surat &lt;b&gt;<mark>DICOBLOS</mark>&lt;/b&gt; di <mark>tps</mark>, sebarkan!"
        );
    }

    proptest! {
        #[test]
        fn highlighting_only_adds_marks(text in ".{0,80}", words in proptest::collection::vec("[a-zA-Z]{1,6}", 0..4)) {
            let marked = highlight(&text, &words);
            prop_assert_eq!(marked.replace("<mark>", "").replace("</mark>", ""), escape(&text));
        }

        #[test]
        fn escaped_text_has_no_markup(text in ".{0,80}") {
            let escaped = escape(&text);
            prop_assert!(!escaped.contains('<') && !escaped.contains('>') && !escaped.contains('"'));
        }
    }
}
