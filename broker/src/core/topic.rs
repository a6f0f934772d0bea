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

    pub fn matches(&self, key: &[u8]) -> bool {
        // Keys are at most 255 bytes, so this fits on the stack.
        let mut buf: [&[u8]; 256] = [&[]; 256];
        let mut n = 0;
        for w in words(key) {
            buf[n] = w;
            n += 1;
        }
        match_words(&self.words, &buf[..n])
    }
}

/// Greedy matching with one backtrack point per `#`, iterative: linear-ish
/// in practice and no recursion depth to exhaust.
fn match_words(pat: &[Word], key: &[&[u8]]) -> bool {
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
            Some(Word::Literal(w)) if w.as_slice() == key[k] => {
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
        TopicPattern::new(&ShortStr::try_from(pattern).unwrap_or_default()).matches(key.as_bytes())
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
