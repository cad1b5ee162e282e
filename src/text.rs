//! [`ShortText`]: a string held inline when short (codes and ids: up to 22 bytes) and boxed
//! otherwise. Records kept by the million (audit stays) carry several codes each; inline they
//! cost no allocation and no pointer chase.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

const INLINE: usize = 22;

/// An immutable string, inline up to 22 bytes. Compares, hashes and orders as its text.
#[derive(Clone)]
pub struct ShortText(Repr);

#[derive(Clone)]
enum Repr {
    /// `len` bytes of UTF-8 text, then zeros.
    Inline {
        len: u8,
        bytes: [u8; INLINE],
    },
    Heap(Box<str>),
}

impl ShortText {
    pub fn new(text: &str) -> ShortText {
        if text.len() <= INLINE {
            let mut bytes = [0u8; INLINE];
            bytes[..text.len()].copy_from_slice(text.as_bytes());
            ShortText(Repr::Inline { len: text.len() as u8, bytes })
        } else {
            ShortText(Repr::Heap(text.into()))
        }
    }

    /// The text's bytes (no UTF-8 check: for hashing and comparing).
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes } => &bytes[..*len as usize],
            Repr::Heap(text) => text.as_bytes(),
        }
    }

    pub fn as_str(&self) -> &str {
        match &self.0 {
            // Always the bytes of a `&str` cut at its end: valid UTF-8.
            Repr::Inline { len, bytes } => std::str::from_utf8(&bytes[..*len as usize]).unwrap_or_default(),
            Repr::Heap(text) => text,
        }
    }
}

impl Default for ShortText {
    fn default() -> ShortText {
        ShortText::new("")
    }
}

impl Deref for ShortText {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for ShortText {
    fn eq(&self, other: &ShortText) -> bool {
        match (&self.0, &other.0) {
            (Repr::Inline { len: a, bytes: x }, Repr::Inline { len: b, bytes: y }) => a == b && x == y,
            _ => self.as_str() == other.as_str(),
        }
    }
}

impl Eq for ShortText {}

impl PartialEq<str> for ShortText {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ShortText {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialOrd for ShortText {
    fn partial_cmp(&self, other: &ShortText) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ShortText {
    fn cmp(&self, other: &ShortText) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for ShortText {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As `str` hashes: the bytes, then a terminator.
        state.write(self.as_bytes());
        state.write_u8(0xff);
    }
}

impl fmt::Debug for ShortText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for ShortText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for ShortText {
    fn from(text: &str) -> ShortText {
        ShortText::new(text)
    }
}

impl From<String> for ShortText {
    fn from(text: String) -> ShortText {
        ShortText::new(&text)
    }
}

impl From<&String> for ShortText {
    fn from(text: &String) -> ShortText {
        ShortText::new(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_texts_round_trip_compare_and_order_as_text() {
        let texts = ["", "A", "C2026000000001", "1234567890123456789012", "12345678901234567890123", "中文诊断名称很长很长很长很长"];
        for a in texts {
            let x = ShortText::new(a);
            assert_eq!(x.as_str(), a);
            assert_eq!(x.to_string(), a);
            for b in texts {
                let y = ShortText::new(b);
                assert_eq!(x == y, a == b);
                assert_eq!(x.cmp(&y), a.cmp(b));
            }
        }
        assert_eq!(std::mem::size_of::<ShortText>(), 24);
        let hash = |h: &dyn Fn(&mut std::collections::hash_map::DefaultHasher)| {
            let mut state = std::collections::hash_map::DefaultHasher::new();
            h(&mut state);
            state.finish()
        };
        for text in texts {
            assert_eq!(hash(&|s| ShortText::new(text).hash(s)), hash(&|s| text.hash(s)), "hashes as its text");
        }
    }
}
