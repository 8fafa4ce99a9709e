//! Property tests of the Containerfile parser and word substitution: arbitrary text and
//! text shaped like a Containerfile never panic; a refusal names a line of the file.

use crate::parse::{parse, Args};
use crate::words::{expand, expand_words, key_values};
use proptest::prelude::*;
use std::collections::BTreeMap;

/// Pieces of Containerfile syntax, hostile ones included.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("FROM".to_string()),
        Just("RUN".to_string()),
        Just("COPY".to_string()),
        Just("ENV".to_string()),
        Just("ARG".to_string()),
        Just("LABEL".to_string()),
        Just("CMD".to_string()),
        Just("WORKDIR".to_string()),
        Just("USER".to_string()),
        Just("ONBUILD".to_string()),
        Just("# escape=`".to_string()),
        Just("# escape=x".to_string()),
        Just("#".to_string()),
        Just("\\".to_string()),
        Just("`".to_string()),
        Just("\n".to_string()),
        Just(" ".to_string()),
        Just("\"".to_string()),
        Just("'".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just(",".to_string()),
        Just("=".to_string()),
        Just("--from=".to_string()),
        Just("--chown=".to_string()),
        Just("$".to_string()),
        Just("${".to_string()),
        Just("}".to_string()),
        Just("${A:-".to_string()),
        Just("${A:+".to_string()),
        Just("$A".to_string()),
        Just("$LONG".to_string()),
        Just("é".to_string()),
        Just("日本".to_string()),
        Just("a".to_string()),
        Just("/x".to_string()),
        "[ -~]{1,6}",
    ]
}

fn vars() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("A".to_string(), "1".to_string()),
        ("LONG".to_string(), "é".repeat(40)),
        ("E".to_string(), String::new()),
    ])
}

/// Parses `text` and substitutes every instruction's words as the builder would.
fn check(text: &str) -> Result<(), TestCaseError> {
    let lines = text.lines().count();
    match parse(text) {
        Ok(cf) => {
            let v = vars();
            for ins in &cf.instructions {
                prop_assert!(
                    ins.line >= 1 && ins.line <= lines.max(1),
                    "line {}",
                    ins.line
                );
                let raw = match &ins.args {
                    Args::Raw(s) => s.clone(),
                    Args::Json(w) => w.join(" "),
                };
                let _ = expand(&raw, cf.escape, &v);
                let _ = expand_words(&raw, cf.escape, &v);
                let _ = key_values(&raw, cf.escape, &v);
                for (_, f) in &ins.flags {
                    let _ = expand(f, cf.escape, &v);
                }
            }
        }
        Err(e) => {
            prop_assert!(e.line >= 1 && e.line <= lines.max(1) + 1, "{e}");
            let prefix = format!("line {}: ", e.line);
            prop_assert!(e.to_string().starts_with(&prefix), "{}", e);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text(text in "\\PC{0,200}") {
        check(&text)?;
    }

    #[test]
    fn containerfile_shaped_text(tokens in proptest::collection::vec(token(), 0..40)) {
        check(&tokens.join(""))?;
    }

    #[test]
    fn containerfile_shaped_lines(tokens in proptest::collection::vec(token(), 0..40)) {
        check(&tokens.join(" "))?;
    }
}
