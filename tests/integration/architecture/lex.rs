//! A small Rust lexer for the architecture checks: identifiers and the punctuation they need,
//! with comments, strings, characters, lifetimes and numbers dropped, each token on its line.

/// A lexical token: an identifier or one punctuation mark (`::` is one token).
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Ident(String),
    Punct(&'static str),
}

/// The punctuation the scanners look at; everything else is dropped.
const PUNCT: [(char, &str); 12] = [('{', "{"), ('}', "}"), ('(', "("), (')', ")"), ('[', "["), (']', "]"), (';', ";"), (',', ","), ('*', "*"), ('#', "#"), ('!', "!"), ('<', "<")];

struct Lexer {
    c: Vec<char>,
    i: usize,
    line: usize,
    out: Vec<(Tok, usize)>,
}

impl Lexer {
    fn at(&self, k: usize) -> Option<char> {
        self.c.get(self.i + k).copied()
    }

    fn is_ident_char(ch: char) -> bool {
        ch.is_alphanumeric() || ch == '_'
    }

    /// Moves past one character, counting lines.
    fn bump(&mut self) {
        if self.c[self.i] == '\n' {
            self.line += 1;
        }
        self.i += 1;
    }

    /// `/* .. */`, nested.
    fn block_comment(&mut self) {
        let mut depth = 0;
        while self.i < self.c.len() {
            if self.at(0) == Some('/') && self.at(1) == Some('*') {
                depth += 1;
                self.i += 2;
            } else if self.at(0) == Some('*') && self.at(1) == Some('/') {
                depth -= 1;
                self.i += 2;
                if depth == 0 {
                    return;
                }
            } else {
                self.bump();
            }
        }
    }

    /// A string body from just past its opening quote; a raw one has no escapes and ends at `"` and its hashes.
    fn string(&mut self, raw: bool, hashes: usize) {
        while self.i < self.c.len() {
            if !raw && self.at(0) == Some('\\') {
                self.i += 1;
                self.bump();
                continue;
            }
            if self.at(0) == Some('"') && (1..=hashes).all(|h| self.at(h) == Some('#')) {
                self.i += 1 + hashes;
                return;
            }
            self.bump();
        }
    }

    /// A string prefix here (r", r#", b", br", br#"): (raw, hashes, length of the prefix with its quote).
    fn string_prefix(&self) -> Option<(bool, usize, usize)> {
        if self.i > 0 && Self::is_ident_char(self.c[self.i - 1]) {
            return None;
        }
        let mut j = 0;
        if self.at(j) == Some('b') {
            j += 1;
        }
        let raw = self.at(j) == Some('r');
        if raw {
            j += 1;
        }
        if j == 0 {
            return None;
        }
        let hashes = (j..).take_while(|k| self.at(*k) == Some('#')).count();
        (self.at(j + hashes) == Some('"') && (raw || hashes == 0)).then_some((raw, hashes, j + hashes + 1))
    }

    /// A character literal ('a', '\n', '\'') or a lifetime ('a, 'static).
    fn char_or_lifetime(&mut self) {
        if self.at(1) == Some('\\') {
            self.i += 2;
            while self.i < self.c.len() && self.at(0) != Some('\'') {
                self.i += 1;
            }
            self.i += 1;
        } else if self.at(2) == Some('\'') {
            self.i += 3;
        } else {
            self.i += 1;
            while self.at(0).is_some_and(Self::is_ident_char) {
                self.i += 1;
            }
        }
    }

    fn push(&mut self, t: Tok) {
        self.out.push((t, self.line));
    }

    /// One token or skipped span starting here.
    fn step(&mut self) {
        let (ch, next) = (self.c[self.i], self.at(1));
        if ch == '/' && next == Some('/') {
            while self.at(0).is_some_and(|x| x != '\n') {
                self.i += 1;
            }
        } else if ch == '/' && next == Some('*') {
            self.block_comment();
        } else if ch == '"' {
            self.i += 1;
            self.string(false, 0);
        } else if let Some((raw, hashes, len)) = self.string_prefix() {
            self.i += len;
            self.string(raw, hashes);
        } else if ch == 'r' && next == Some('#') && self.at(2).is_some_and(|x| x.is_alphabetic() || x == '_') {
            self.i += 2; // a raw identifier r#name: the name is lexed next
        } else if ch == '\'' {
            self.char_or_lifetime();
        } else if ch.is_alphabetic() || ch == '_' {
            let s = self.i;
            while self.at(0).is_some_and(Self::is_ident_char) {
                self.i += 1;
            }
            let word: String = self.c[s..self.i].iter().collect();
            self.push(Tok::Ident(word));
        } else if ch.is_ascii_digit() {
            while self.at(0).is_some_and(|x| Self::is_ident_char(x) || x == '.' && self.at(1).is_some_and(|d| d.is_ascii_digit())) {
                self.i += 1;
            }
        } else if ch == ':' && next == Some(':') {
            self.push(Tok::Punct("::"));
            self.i += 2;
        } else {
            if let Some((_, p)) = PUNCT.iter().find(|(c, _)| *c == ch) {
                self.push(Tok::Punct(p));
            }
            self.bump();
        }
    }
}

/// Splits Rust source into identifiers and the punctuation the scanners need; each token keeps its
/// 1-based line.
pub fn lex(src: &str) -> Vec<(Tok, usize)> {
    let mut l = Lexer { c: src.chars().collect(), i: 0, line: 1, out: Vec::new() };
    while l.i < l.c.len() {
        l.step();
    }
    l.out
}

/// Every function with a body in `src` as (name, first line, number of lines), comments and strings
/// left out of the brace matching.
pub fn function_lengths(src: &str) -> Vec<(String, usize, usize)> {
    let toks = lex(src);
    let mut out = Vec::new();
    for i in 0..toks.len() {
        let (Tok::Ident(kw), line) = &toks[i] else { continue };
        let Some((Tok::Ident(name), _)) = toks.get(i + 1) else { continue };
        if kw != "fn" {
            continue;
        }
        // The body is the first `{` before any `;` (a declaration without a body has none).
        let Some(open) = (i + 2..toks.len()).find(|j| matches!(toks[*j].0, Tok::Punct("{") | Tok::Punct(";"))) else { continue };
        if toks[open].0 == Tok::Punct(";") {
            continue;
        }
        let mut depth = 0usize;
        for (t, end) in &toks[open..] {
            match t {
                Tok::Punct("{") => depth += 1,
                Tok::Punct("}") => {
                    depth -= 1;
                    if depth == 0 {
                        out.push((name.clone(), *line, end - line + 1));
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    out
}
