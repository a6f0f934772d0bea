//! Server-generated names (`amq.gen-…` queues, `amq.ctag-…` consumer tags).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use warren_protocol::ShortStr;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// `prefix` followed by 22 random URL-safe base64 characters (128 bits), as
/// RabbitMQ's generated names look.
pub fn generate(prefix: &str) -> ShortStr {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut out = String::with_capacity(prefix.len() + 22);
    out.push_str(prefix);
    let mut bits = 0u128;
    for half in 0..2u64 {
        // RandomState is seeded randomly per process and per instance.
        let mut h = RandomState::new().build_hasher();
        h.write_u64(n);
        h.write_u64(half);
        bits = (bits << 64) | u128::from(h.finish());
    }
    for _ in 0..22 {
        out.push(char::from(ALPHABET[(bits & 63) as usize]));
        bits >>= 6;
    }
    ShortStr::try_from(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn generated_names_differ_and_have_the_prefix() {
        let a = super::generate("amq.gen-");
        let b = super::generate("amq.gen-");
        assert_ne!(a, b);
        assert!(a.as_bytes().starts_with(b"amq.gen-"));
        assert_eq!(a.len(), "amq.gen-".len() + 22);
    }
}
