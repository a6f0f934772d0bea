//! Topic binding keys: words separated by dots, `*` for exactly one word and
//! `#` for zero or more, with empty words allowed, as RabbitMQ matches them.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Word {
    Literal(Vec<u8>),
    One,
    Any,
}

#[derive(Debug, Clone)]
pub struct TopicPattern {
    words: Vec<Word>,
}

/// Splits a key into words. The empty key has no words at all, while
/// `a..b` has three (the middle one empty), as in RabbitMQ.
fn words(key: &[u8]) -> impl Iterator<Item = &[u8]> {
    let empty = key.is_empty();
    key.split(|&b| b == b'.').filter(move |_| !empty)
}

impl TopicPattern {
    pub fn new(key: &warren_protocol::ShortStr) -> TopicPattern {
        let words = words(key.as_bytes())
            .map(|w| match w {
                b"*" => Word::One,
                b"#" => Word::Any,
                w => Word::Literal(w.to_vec()),
            })
            .collect();
        TopicPattern { words }
    }

    /// Whether a routing key, already split by [`TopicKey::split`],
    /// matches. An exchange splits the key once for all its bindings.
    pub fn matches(&self, key: &TopicKey<'_>) -> bool {
        match_words(&self.words, key)
    }
}

/// A routing key split into words, once per routed message.
pub struct TopicKey<'a> {
    key: &'a [u8],
    words: &'a [(u8, u8)],
}

impl<'a> TopicKey<'a> {
    /// Splits `key` into `words` (start and end of each word; a short
    /// string's offsets fit in a byte). `words` is reused between calls.
    pub fn split(key: &'a [u8], words: &'a mut Vec<(u8, u8)>) -> TopicKey<'a> {
        words.clear();
        let base = key.as_ptr() as usize;
        words.extend(self::words(key).map(|w| {
            let start = w.as_ptr() as usize - base;
            (
                u8::try_from(start).unwrap_or(u8::MAX),
                u8::try_from(start + w.len()).unwrap_or(u8::MAX),
            )
        }));
        TopicKey { key, words }
    }

    fn len(&self) -> usize {
        self.words.len()
    }

    fn word(&self, i: usize) -> &[u8] {
        let (start, end) = self.words[i];
        self.key
            .get(start as usize..end as usize)
            .unwrap_or_default()
    }
}

/// Greedy matching with one backtrack point per `#`, iterative: linear-ish
/// in practice and no recursion depth to exhaust.
fn match_words(pat: &[Word], key: &TopicKey<'_>) -> bool {
    let (mut p, mut k) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while k < key.len() {
        match pat.get(p) {
            Some(Word::Any) => {
                star = Some((p, k));
                p += 1;
            }
            Some(Word::One) => {
                p += 1;
                k += 1;
            }
            Some(Word::Literal(w)) if w.as_slice() == key.word(k) => {
                p += 1;
                k += 1;
            }
            _ => match star {
                Some((sp, sk)) => {
                    p = sp + 1;
                    k = sk + 1;
                    star = Some((sp, sk + 1));
                }
                None => return false,
            },
        }
    }
    pat[p..].iter().all(|w| *w == Word::Any)
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_protocol::ShortStr;

    fn m(pattern: &str, key: &str) -> bool {
        let mut words = Vec::new();
        let key = TopicKey::split(key.as_bytes(), &mut words);
        TopicPattern::new(&ShortStr::try_from(pattern).unwrap_or_default()).matches(&key)
    }

    #[test]
    fn literal_and_star() {
        assert!(m("a.b.c", "a.b.c"));
        assert!(!m("a.b.c", "a.b"));
        assert!(m("a.*.c", "a.x.c"));
        assert!(!m("a.*.c", "a.c"));
        assert!(!m("*", ""));
        assert!(!m("*", "a.b"));
    }

    #[test]
    fn hash_matches_zero_or_more() {
        assert!(m("#", ""));
        assert!(m("#", "a.b.c"));
        assert!(m("a.#", "a"));
        assert!(m("a.#", "a.b.c"));
        assert!(m("a.#.b", "a.b"));
        assert!(m("a.#.b", "a.x.y.b"));
        assert!(!m("a.#.b", "a.x.y.c"));
        assert!(m("#.#", "a"));
        assert!(m("#.b.#", "b"));
        assert!(m("*.#", "a"));
        assert!(!m("*.#", ""));
    }

    #[test]
    fn empty_words() {
        assert!(m("a..b", "a..b"));
        assert!(m("a.*.b", "a..b"));
        assert!(!m("a.b", "a..b"));
        assert!(m("", ""));
        assert!(!m("", "a"));
        assert!(m("a.", "a."));
        assert!(m("a.*", "a."));
    }
}
