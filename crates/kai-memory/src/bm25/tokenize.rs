//! The tokenizer shared by indexing and querying: Unicode lowercase, split on anything that is
//! not alphanumeric (`char::is_alphanumeric`: letters and digits of every script), optional
//! English stop words, tokens capped at [`MAX_TOKEN_CHARS`] characters.
//!
//! No stemming and no Unicode normalization: text is expected in NFC (what browsers and most
//! sources send), where accented letters are single alphanumeric characters. A decomposed
//! accent (a combining mark) is not alphanumeric and splits the word.

/// Longer tokens are truncated to this many characters (bounds memory on hostile input).
pub const MAX_TOKEN_CHARS: usize = 64;

/// Lucene's English stop-word set.
pub const ENGLISH_STOP_WORDS: [&str; 33] = [
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
    "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these",
    "they", "this", "to", "was", "will", "with",
];

/// Splits `text` into lowercase tokens, appending them to `out`.
pub fn tokenize(text: &str, stop_words: bool, out: &mut Vec<String>) {
    let mut token = String::new();
    let mut chars = 0usize;
    let mut flush = |token: &mut String, chars: &mut usize| {
        let stop = stop_words && ENGLISH_STOP_WORDS.contains(&token.as_str());
        if !token.is_empty() && !stop {
            out.push(std::mem::take(token));
        }
        token.clear();
        *chars = 0;
    };
    for c in text.chars() {
        if c.is_alphanumeric() {
            for lower in c.to_lowercase() {
                if chars < MAX_TOKEN_CHARS {
                    token.push(lower);
                    chars += 1;
                }
            }
        } else {
            flush(&mut token, &mut chars);
        }
    }
    flush(&mut token, &mut chars);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn toks(text: &str, stop: bool) -> Vec<String> {
        let mut out = Vec::new();
        tokenize(text, stop, &mut out);
        out
    }

    #[test]
    fn splits_lowercases_and_drops_stop_words() {
        assert_eq!(toks("Hello, World! It's 2024.", false), ["hello", "world", "it", "s", "2024"]);
        assert_eq!(toks("The cat and THE hat", true), ["cat", "hat"]);
        assert_eq!(toks("Straße ÉCOLE naïve", false), ["straße", "école", "naïve"]);
        assert_eq!(toks("東京 タワー", false), ["東京", "タワー"]);
        assert_eq!(toks("ΣΊΣΥΦΟΣ", false), ["σίσυφοσ"]);
        assert_eq!(toks("snake_case-and.dots", false), ["snake", "case", "and", "dots"]);
        assert!(toks("  ...!!! ", false).is_empty());
        assert!(toks("", true).is_empty());
        assert_eq!(toks(&"x".repeat(500), false), ["x".repeat(MAX_TOKEN_CHARS)]);
    }

    proptest! {
        #[test]
        fn tokens_are_lowercase_alphanumeric_and_bounded(text in "\\PC{0,200}") {
            for t in toks(&text, true) {
                prop_assert!(!t.is_empty());
                prop_assert!(t.chars().count() <= MAX_TOKEN_CHARS);
                prop_assert!(!ENGLISH_STOP_WORDS.contains(&t.as_str()));
                // Tokenizing a token again gives itself (idempotent), except for the rare
                // characters whose lowercase form is not alphanumeric.
                let again = toks(&t, false);
                if t.chars().all(char::is_alphanumeric) {
                    prop_assert_eq!(again, vec![t.clone()]);
                }
            }
        }
    }
}
