//! Validated names, tags and digests. Every path the server builds from a request goes
//! through these types first, so no `..`, `/` or other byte outside the grammars below
//! ever reaches the filesystem.

use std::fmt;

/// A repository name, checked against the grammar of spec.md ("Pulling manifests"):
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`,
/// at most 255 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(String);

/// Why a name, tag or digest was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RefError {
    #[error("repository name {0:?} does not match the distribution-spec grammar")]
    Name(String),
    #[error("tag {0:?} does not match [a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}}")]
    Tag(String),
    #[error("digest {0:?} is not ALGORITHM:HEX")]
    Digest(String),
    #[error("digest algorithm {0:?} is not supported (sha256, sha512)")]
    Algorithm(String),
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// One path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn component_ok(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__" or "-+", followed by an alphanumeric.
        let start = i;
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == start || i >= b.len() || !is_alnum(b[i]) {
            return false;
        }
    }
    true
}

impl Name {
    pub fn parse(s: &str) -> Result<Name, RefError> {
        if s.is_empty() || s.len() > 255 || !s.split('/').all(component_ok) {
            return Err(RefError::Name(s.to_string()));
        }
        Ok(Name(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first path component (the namespace that may belong to a user).
    pub fn namespace(&self) -> &str {
        self.0.split('/').next().unwrap_or(&self.0)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn valid_tag(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// Digests are `berth-content`'s (one type for the image store and the registry: sha256
/// and sha512, lower-case hex of the full length).
pub use content::{Algorithm, Digest};

/// Parses `ALG:HEX` as a request or a document gives it. A well-formed digest of an
/// algorithm we do not implement is [`RefError::Algorithm`] (answered as UNSUPPORTED),
/// anything else that is not a sha256/sha512 digest [`RefError::Digest`].
pub fn parse_digest(s: &str) -> Result<Digest, RefError> {
    let (alg, encoded) = s
        .split_once(':')
        .ok_or_else(|| RefError::Digest(s.to_string()))?;
    // spec.md / image-spec descriptor grammar: algorithm-component [a-z0-9]+ joined by
    // [+._-]; encoded [a-zA-Z0-9=_-]+.
    let alg_ok = !alg.is_empty()
        && alg
            .bytes()
            .all(|c| is_alnum(c) || matches!(c, b'+' | b'.' | b'_' | b'-'));
    let encoded_ok = !encoded.is_empty()
        && encoded
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'=' | b'_' | b'-'));
    if !alg_ok || !encoded_ok {
        return Err(RefError::Digest(s.to_string()));
    }
    if !matches!(alg, "sha256" | "sha512") {
        return Err(RefError::Algorithm(alg.to_string()));
    }
    s.parse().map_err(|_| RefError::Digest(s.to_string()))
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(H[(b >> 4) as usize] as char);
        s.push(H[(b & 15) as usize] as char);
    }
    s
}

/// A manifest reference: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Tag(String),
    Digest(Digest),
}

impl Reference {
    pub fn parse(s: &str) -> Result<Reference, RefError> {
        if s.contains(':') {
            parse_digest(s).map(Reference::Digest)
        } else if valid_tag(s) {
            Ok(Reference::Tag(s.to_string()))
        } else {
            Err(RefError::Tag(s.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "library/busybox", "a.b_c__d-e---f/g0", "x/y/z"] {
            assert!(Name::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "A", "a/../b", "..", "a//b", "/a", "a/", "a__-b", "a___b", "-a", "a.", "a/B",
            "a b", "a/./b",
        ] {
            assert!(Name::parse(bad).is_err(), "{bad}");
        }
        assert!(Name::parse(&"a".repeat(256)).is_err());
    }

    #[test]
    fn tags() {
        assert!(valid_tag("latest") && valid_tag("_x.Y-1") && valid_tag(&"a".repeat(128)));
        assert!(!valid_tag("") && !valid_tag(".x") && !valid_tag("-x") && !valid_tag("a/b"));
        assert!(!valid_tag(&"a".repeat(129)));
    }

    #[test]
    fn digests() {
        let d = Digest::of(Algorithm::Sha256, b"");
        assert_eq!(
            d.to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(parse_digest(&d.to_string()), Ok(d));
        assert!(parse_digest("sha256:../../etc").is_err());
        assert!(parse_digest("sha256:ABC").is_err());
        assert!(matches!(
            parse_digest("md5:abc"),
            Err(RefError::Algorithm(_))
        ));
        let d = Digest::of(Algorithm::Sha512, b"x");
        assert_eq!(parse_digest(&d.to_string()), Ok(d));
    }

    mod prop {
        use super::super::*;
        use proptest::prelude::*;

        /// Bytes that matter to the grammars, plus anything else.
        fn text() -> impl Strategy<Value = String> {
            prop_oneof![
                "[a-z0-9._/:-]{0,80}",
                "[A-Za-z0-9._/:@+ %-]{0,40}",
                any::<String>(),
            ]
        }

        proptest! {
            #[test]
            fn names_never_panic_and_refusals_name_the_input(s in text()) {
                match Name::parse(&s) {
                    Ok(n) => {
                        prop_assert_eq!(n.as_str(), s.as_str());
                        prop_assert!(s.len() <= 255);
                        // Nothing a path could escape with.
                        prop_assert!(s.split('/').all(|c| !c.is_empty()
                            && !c.starts_with('.') && !c.starts_with('_')));
                        prop_assert!(!n.namespace().is_empty());
                    }
                    Err(e) => {
                        prop_assert_eq!(&e, &RefError::Name(s.clone()));
                        let quoted = format!("{s:?}");
                        let shown = e.to_string().contains(&quoted);
                        prop_assert!(shown);
                    }
                }
            }

            #[test]
            fn names_of_the_grammar_parse(
                s in "[a-z0-9]{1,8}(([.]|_|__|-{1,3})[a-z0-9]{1,8}){0,2}(/[a-z0-9]{1,8}(([.]|_|__|-{1,3})[a-z0-9]{1,8}){0,2}){0,3}"
            ) {
                prop_assert!(Name::parse(&s).is_ok(), "{s}");
            }

            #[test]
            fn tags_and_references_never_panic(s in text()) {
                let tag_ok = valid_tag(&s);
                if tag_ok {
                    prop_assert!(!s.is_empty() && s.len() <= 128 && !s.contains('/'));
                    prop_assert!(!s.starts_with('.') && !s.starts_with('-'));
                }
                match Reference::parse(&s) {
                    Ok(Reference::Tag(t)) => prop_assert_eq!(t, s),
                    Ok(Reference::Digest(d)) => prop_assert_eq!(d.to_string(), s),
                    Err(e) => prop_assert!(!e.to_string().is_empty()),
                }
            }

            #[test]
            fn digests_never_panic_and_round_trip(
                s in prop_oneof![
                    text(),
                    "(sha256|sha512|md5|SHA256|sha256\\+b64):[0-9a-fA-F]{0,130}",
                ]
            ) {
                match parse_digest(&s) {
                    Ok(d) => {
                        prop_assert_eq!(d.to_string(), s.clone());
                        prop_assert!(d.hex().bytes().all(|b| b.is_ascii_hexdigit()));
                    }
                    Err(RefError::Digest(x)) | Err(RefError::Algorithm(x)) => {
                        prop_assert!(s.contains(&x));
                    }
                    Err(e) => prop_assert!(false, "unexpected refusal {e}"),
                }
            }
        }
    }
}
