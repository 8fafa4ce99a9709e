//! Words and variable substitution as the Dockerfile reference defines them for FROM, ADD,
//! COPY, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR and ARG: `$VAR`, `${VAR}`,
//! `${VAR:-default}`, `${VAR:+alternative}` (and `-`/`+` without the colon, which test for
//! "set" instead of "set and non-empty"). Single quotes are literal, double quotes allow
//! substitution, the escape character quotes the next character. RUN, CMD and ENTRYPOINT
//! are left to the shell.

/// A substitution error (an unterminated quote or `${`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WordError {
    /// A `'` or `"` without its closing quote.
    #[error("unterminated quote in {0:?}")]
    Quote(String),
    /// A `${` without its `}`.
    #[error("unterminated ${{ in {0:?}")]
    Brace(String),
    /// `${}`, `${NAME?…}` and the like, or a malformed `KEY=VALUE`.
    #[error("invalid substitution {0:?}")]
    Bad(String),
}

/// The variables in scope for a substitution.
pub trait Vars {
    fn get(&self, name: &str) -> Option<&str>;
}

impl Vars for std::collections::BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<&str> {
        std::collections::BTreeMap::get(self, name).map(String::as_str)
    }
}

impl Vars for [(String, String)] {
    fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

struct Lexer<'a, V: Vars + ?Sized> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    vars: &'a V,
    src: &'a str,
}

impl<V: Vars + ?Sized> Lexer<'_, V> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        self.pos += 1;
        c
    }

    /// Reads one word (quotes removed, variables substituted); `split` stops it at blanks.
    fn word(&mut self, split: bool) -> Result<String, WordError> {
        let mut out = String::new();
        while let Some(c) = self.peek() {
            if split && c.is_whitespace() {
                break;
            }
            self.pos += 1;
            match c {
                '\'' => loop {
                    match self.next() {
                        Some('\'') => break,
                        Some(c) => out.push(c),
                        None => return Err(WordError::Quote(self.src.to_string())),
                    }
                },
                '"' => loop {
                    match self.next() {
                        Some('"') => break,
                        Some('$') => out.push_str(&self.variable()?),
                        Some(c) if c == self.escape => match self.next() {
                            Some(n @ ('"' | '$')) => out.push(n),
                            Some(n) if n == self.escape => out.push(n),
                            Some(n) => {
                                out.push(c);
                                out.push(n);
                            }
                            None => return Err(WordError::Quote(self.src.to_string())),
                        },
                        Some(c) => out.push(c),
                        None => return Err(WordError::Quote(self.src.to_string())),
                    }
                },
                '$' => out.push_str(&self.variable()?),
                c if c == self.escape => match self.next() {
                    Some(n) => out.push(n),
                    None => out.push(c),
                },
                c => out.push(c),
            }
        }
        Ok(out)
    }

    /// After a `$`: the value of `NAME`, `{NAME}` or `{NAME:-word}` and friends.
    fn variable(&mut self) -> Result<String, WordError> {
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".to_string());
            }
            return Ok(self.vars.get(&name).unwrap_or_default().to_string());
        }
        self.pos += 1;
        let name = self.name();
        if name.is_empty() {
            return Err(WordError::Bad(self.src.to_string()));
        }
        let value = self.vars.get(&name).map(str::to_string);
        match self.next() {
            Some('}') => Ok(value.unwrap_or_default()),
            Some(c @ (':' | '-' | '+')) => {
                let (colon, op) = if c == ':' {
                    (true, self.next())
                } else {
                    (false, Some(c))
                };
                let word = self.until_brace()?;
                let set = match &value {
                    Some(v) => !colon || !v.is_empty(),
                    None => false,
                };
                match op {
                    Some('-') => Ok(if set { value.unwrap_or_default() } else { word }),
                    Some('+') => Ok(if set { word } else { String::new() }),
                    _ => Err(WordError::Bad(self.src.to_string())),
                }
            }
            None => Err(WordError::Brace(self.src.to_string())),
            Some(_) => Err(WordError::Bad(self.src.to_string())),
        }
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                name.push(c);
                self.pos += 1;
            } else {
                break;
            }
        }
        name
    }

    /// The word of `${NAME:-word}` up to the closing brace, itself substituted.
    fn until_brace(&mut self) -> Result<String, WordError> {
        let mut out = String::new();
        loop {
            match self.next() {
                Some('}') => return Ok(out),
                Some('$') => out.push_str(&self.variable()?),
                Some(c) if c == self.escape => {
                    if let Some(n) = self.next() {
                        out.push(n);
                    }
                }
                Some(c) => out.push(c),
                None => return Err(WordError::Brace(self.src.to_string())),
            }
        }
    }
}

fn lexer<'a, V: Vars + ?Sized>(src: &'a str, escape: char, vars: &'a V) -> Lexer<'a, V> {
    Lexer {
        chars: src.chars().collect(),
        pos: 0,
        escape,
        vars,
        src,
    }
}

/// `src` as one word: quotes removed, variables substituted, blanks kept.
pub fn expand<V: Vars + ?Sized>(src: &str, escape: char, vars: &V) -> Result<String, WordError> {
    lexer(src, escape, vars).word(false)
}

/// `src` split into words at unquoted blanks, each substituted.
pub fn expand_words<V: Vars + ?Sized>(
    src: &str,
    escape: char,
    vars: &V,
) -> Result<Vec<String>, WordError> {
    let mut lx = lexer(src, escape, vars);
    let mut words = Vec::new();
    loop {
        while lx.peek().is_some_and(char::is_whitespace) {
            lx.pos += 1;
        }
        if lx.peek().is_none() {
            return Ok(words);
        }
        words.push(lx.word(true)?);
    }
}

/// `KEY=VALUE` pairs (ENV, LABEL), or the legacy `KEY VALUE` form when the first word has
/// no `=`.
pub fn key_values<V: Vars + ?Sized>(
    src: &str,
    escape: char,
    vars: &V,
) -> Result<Vec<(String, String)>, WordError> {
    let words = expand_words(src, escape, vars)?;
    if let Some(first) = words.first() {
        if !first.contains('=') {
            // `ENV KEY value with spaces`: the rest of the line is the value. Where the
            // first word ends in `src` is found by lexing it again (substitution and
            // quotes make its length differ from the source's: `ENV $K v`).
            let mut lx = lexer(src, escape, vars);
            while lx.peek().is_some_and(char::is_whitespace) {
                lx.pos += 1;
            }
            lx.word(true)?;
            let rest: String = lx.chars[lx.pos.min(lx.chars.len())..].iter().collect();
            return Ok(vec![(first.clone(), expand(rest.trim(), escape, vars)?)]);
        }
    }
    words
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(WordError::Bad(w)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn vars() -> BTreeMap<String, String> {
        [("A", "one"), ("E", ""), ("P", "/app")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// `ENV $K value` (the first word longer or shorter once substituted, or quoted)
    /// used to slice the source at the substituted word's length: a panic of the builder.
    #[test]
    fn legacy_env_form_with_a_substituted_key() {
        let vars = BTreeMap::from([("K".to_string(), "a_long_name_for_a_key".to_string())]);
        assert_eq!(
            key_values("$K some value", '\\', &vars).expect("ok"),
            [(
                "a_long_name_for_a_key".to_string(),
                "some value".to_string()
            )]
        );
        assert_eq!(
            key_values("\"K\" v w", '\\', &vars).expect("ok"),
            [("K".to_string(), "v w".to_string())]
        );
        assert_eq!(
            key_values("${E}é x", '\\', &vars).expect("ok"),
            [("é".to_string(), "x".to_string())]
        );
    }

    #[test]
    fn substitution_forms() {
        let v = vars();
        let x = |s: &str| expand(s, '\\', &v).expect("expands");
        assert_eq!(x("$A"), "one");
        assert_eq!(x("${A}x"), "onex");
        assert_eq!(x("${Z:-def}"), "def");
        assert_eq!(x("${E:-def}"), "def");
        assert_eq!(x("${E-def}"), "");
        assert_eq!(x("${A:-def}"), "one");
        assert_eq!(x("${A:+alt}"), "alt");
        assert_eq!(x("${Z:+alt}"), "");
        assert_eq!(x("${Z:-$P/bin}"), "/app/bin");
        assert_eq!(x("'$A'"), "$A");
        assert_eq!(x("\"$A b\""), "one b");
        assert_eq!(x("\\$A"), "$A");
        assert_eq!(x("cost $"), "cost $");
        assert!(expand("${A", '\\', &v).is_err());
        assert!(expand("'open", '\\', &v).is_err());
    }

    #[test]
    fn words_and_pairs() {
        let v = vars();
        assert_eq!(
            expand_words("a \"b c\" $P/d", '\\', &v).expect("splits"),
            vec!["a", "b c", "/app/d"]
        );
        assert_eq!(
            key_values("X=1 Y=\"two words\" Z=$A", '\\', &v).expect("pairs"),
            vec![
                ("X".to_string(), "1".to_string()),
                ("Y".to_string(), "two words".to_string()),
                ("Z".to_string(), "one".to_string())
            ]
        );
        assert_eq!(
            key_values("K some value $A", '\\', &v).expect("legacy"),
            vec![("K".to_string(), "some value one".to_string())]
        );
    }
}
