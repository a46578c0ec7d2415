//! The fastest re-read of a file whose layout has not changed: its last text, cut at the value
//! tokens. A kernel prints the same names, colons, headers and spaces snapshot after snapshot;
//! only the numbers move. So the new text is checked against the old one literal run by literal
//! run (`memcmp`), and only the bytes where a number stood are parsed, with the same number
//! parser as the full parse. Any difference (a field added or renamed, a number printed with
//! line breaks or other characters where spaces stood, a token that is not a number) makes `read`
//! say no, and the caller
//! runs the full parse, which reports what is malformed or learns the new layout.
//!
//! Why this is exact: the file parsers split lines at ASCII whitespace and take each value from
//! one token. A text equal to the old one outside the value tokens (but for the number of spaces,
//! one or more, just before a token), whose value tokens are non-empty runs of non-whitespace
//! bytes, tokenises into the same lines, sections and names; the full parse would find the same
//! pairs and parse the same token bytes.

use super::parse::{Sink, parse_num_bytes};

/// One file's text as last parsed in full, with the byte range of each pair's value token.
#[derive(Debug, Default)]
pub(super) struct Skeleton {
    text: Vec<u8>,
    /// (start, end) of each value token in `text`, in file order: one per pair.
    tokens: Vec<(usize, usize)>,
    /// Per token: where the literal run before it ends once its trailing spaces are cut.
    cores: Vec<usize>,
    /// False when some pair's value is not one token of the text (softnet's sums, loadavg).
    usable: bool,
}

/// The sink that records where each value token lies in the text being parsed.
pub(super) struct Tokens<'s> {
    base: usize,
    len: usize,
    ranges: &'s mut Vec<(usize, usize)>,
    ok: bool,
}

impl<'a> Sink<'a> for Tokens<'_> {
    fn pair(&mut self, _section: &'a str, _field: &'a str, _value: f64, token: &'a str) {
        let start = (token.as_ptr() as usize).wrapping_sub(self.base);
        let end = start.wrapping_add(token.len());
        // In file order, inside the text, not empty: anything else cannot be re-read by position.
        let after = self.ranges.last().map_or(0, |r| r.1);
        if token.is_empty() || start < after || end > self.len {
            self.ok = false;
        }
        self.ranges.push((start, end));
    }
}

impl Tokens<'_> {
    /// Whether every pair's value was a token of the text, in file order.
    pub(super) fn ok(&self) -> bool {
        self.ok
    }
}

impl Skeleton {
    /// A sink recording the value tokens of `text`; pass it to the file's parser, then `keep` it.
    pub(super) fn recorder<'s>(&'s mut self, text: &str) -> Tokens<'s> {
        self.tokens.clear();
        Tokens { base: text.as_ptr() as usize, len: text.len(), ranges: &mut self.tokens, ok: true }
    }

    /// Keeps `text` as the skeleton, usable if the recorder saw `pairs` tokens, all in place.
    pub(super) fn keep(&mut self, text: &str, recorded_ok: bool, pairs: usize) {
        self.usable = recorded_ok && self.tokens.len() == pairs;
        self.text.clear();
        self.cores.clear();
        if self.usable {
            self.text.extend_from_slice(text.as_bytes());
            let mut q = 0;
            for &(s, e) in &self.tokens {
                let lit = &self.text[q..s];
                self.cores.push(q + lit.iter().rposition(|b| *b != b' ').map_or(0, |i| i + 1));
                q = e;
            }
        }
    }

    /// Whether `read` can succeed at all (tests).
    #[cfg(test)]
    pub(super) fn is_usable(&self) -> bool {
        self.usable
    }

    /// Parses `new` into `values` (file order) when it differs from the skeleton only in its
    /// value tokens; `false` (and `values` undefined) otherwise.
    #[inline]
    pub(super) fn read(&self, new: &[u8], values: &mut Vec<f64>) -> bool {
        if !self.usable {
            return false;
        }
        values.clear();
        let old = &self.text[..];
        let (mut p, mut q) = (0usize, 0usize);
        for (&(s, e), &core) in self.tokens.iter().zip(&self.cores) {
            let lit = &old[q..core];
            if new.len() < p + lit.len() || !same(&new[p..p + lit.len()], lit) {
                return false;
            }
            p += lit.len();
            if core < s {
                // Spaces before a number separate tokens, however many: meminfo pads its numbers
                // to 8 columns, so a number one digit longer comes with one space fewer.
                let pad = p;
                while p < new.len() && new[p] == b' ' {
                    p += 1;
                }
                if p == pad {
                    return false;
                }
            }
            let start = p;
            while p < new.len() && !new[p].is_ascii_whitespace() {
                p += 1;
            }
            match parse_num_bytes(&new[start..p]) {
                Some(v) => values.push(v),
                None => return false,
            }
            q = e;
        }
        new[p..] == old[q..]
    }
}

/// Byte equality; most literal runs between two numbers are one space, where a `memcmp` call
/// costs more than the comparison.
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() <= 8 { a.iter().zip(b).all(|(x, y)| x == y) } else { a == b }
}
