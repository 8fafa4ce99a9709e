//! The Containerfile (Dockerfile) syntax: parser directives, comments, line continuations,
//! instructions with `--flags`, and the JSON exec form versus the shell form.
//!
//! Follows the Dockerfile reference: directives (`# syntax=…`, `# escape=…`) are only
//! recognised before the first comment, blank line or instruction; a line whose first
//! non-blank character is `#` is a comment, also inside a continued instruction; a line that
//! ends with the escape character continues on the next one. Variable substitution is not
//! done here: it depends on the ARG and ENV in scope at build time (see `words.rs`).

use std::fmt;

/// A parse error: what is wrong and on which line (1-based) of the Containerfile.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("line {line}: {msg}")]
pub struct ParseError {
    pub line: usize,
    pub msg: String,
}

fn err<T>(line: usize, msg: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError {
        line,
        msg: msg.into(),
    })
}

/// Every instruction berth knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyword {
    From,
    Run,
    Cmd,
    Entrypoint,
    Copy,
    Add,
    Env,
    Arg,
    Workdir,
    User,
    Expose,
    Label,
    Volume,
    Shell,
    StopSignal,
    Healthcheck,
    Maintainer,
}

impl Keyword {
    fn parse(word: &str) -> Option<Keyword> {
        Some(match word.to_ascii_uppercase().as_str() {
            "FROM" => Keyword::From,
            "RUN" => Keyword::Run,
            "CMD" => Keyword::Cmd,
            "ENTRYPOINT" => Keyword::Entrypoint,
            "COPY" => Keyword::Copy,
            "ADD" => Keyword::Add,
            "ENV" => Keyword::Env,
            "ARG" => Keyword::Arg,
            "WORKDIR" => Keyword::Workdir,
            "USER" => Keyword::User,
            "EXPOSE" => Keyword::Expose,
            "LABEL" => Keyword::Label,
            "VOLUME" => Keyword::Volume,
            "SHELL" => Keyword::Shell,
            "STOPSIGNAL" => Keyword::StopSignal,
            "HEALTHCHECK" => Keyword::Healthcheck,
            "MAINTAINER" => Keyword::Maintainer,
            _ => return None,
        })
    }

    /// The upper-case spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Keyword::From => "FROM",
            Keyword::Run => "RUN",
            Keyword::Cmd => "CMD",
            Keyword::Entrypoint => "ENTRYPOINT",
            Keyword::Copy => "COPY",
            Keyword::Add => "ADD",
            Keyword::Env => "ENV",
            Keyword::Arg => "ARG",
            Keyword::Workdir => "WORKDIR",
            Keyword::User => "USER",
            Keyword::Expose => "EXPOSE",
            Keyword::Label => "LABEL",
            Keyword::Volume => "VOLUME",
            Keyword::Shell => "SHELL",
            Keyword::StopSignal => "STOPSIGNAL",
            Keyword::Healthcheck => "HEALTHCHECK",
            Keyword::Maintainer => "MAINTAINER",
        }
    }

    /// The flags (`--name=value`) an instruction accepts.
    fn flags(self) -> &'static [&'static str] {
        match self {
            Keyword::From => &["platform"],
            Keyword::Copy => &["from", "chown", "chmod", "link"],
            Keyword::Add => &["chown", "chmod", "link"],
            Keyword::Healthcheck => &[
                "interval",
                "timeout",
                "start-period",
                "start-interval",
                "retries",
            ],
            _ => &[],
        }
    }
}

impl fmt::Display for Keyword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The arguments of an instruction: a JSON array (exec form) or the raw rest of the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Args {
    Json(Vec<String>),
    Raw(String),
}

/// One instruction, as written (variables not yet substituted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// The line (1-based) where the instruction starts.
    pub line: usize,
    pub keyword: Keyword,
    /// `--name=value` flags in the order given.
    pub flags: Vec<(String, String)>,
    pub args: Args,
    /// The instruction on one line (continuations joined), for display and cache keys.
    pub text: String,
}

impl Instruction {
    /// The value of flag `name`, if given.
    pub fn flag(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The raw argument text (a JSON form joined by spaces).
    pub fn raw(&self) -> String {
        match &self.args {
            Args::Raw(s) => s.clone(),
            Args::Json(v) => v.join(" "),
        }
    }
}

/// A parsed Containerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Containerfile {
    /// The escape character (`\` unless `# escape=` says otherwise).
    pub escape: char,
    /// Every instruction in order (the ARGs before the first FROM included).
    pub instructions: Vec<Instruction>,
}

/// Parses a Containerfile.
pub fn parse(text: &str) -> Result<Containerfile, ParseError> {
    let lines: Vec<&str> = text.lines().collect();
    let mut escape = '\\';
    let mut i = 0;
    // Parser directives: only at the very top, `# key=value`.
    while i < lines.len() {
        let Some((key, value)) = directive(lines[i]) else {
            break;
        };
        // `syntax` names a frontend image and `check` configures linting: neither
        // changes how berth reads the file.
        if key == "escape" {
            escape = match value.as_str() {
                "\\" => '\\',
                "`" => '`',
                other => {
                    return err(
                        i + 1,
                        format!("invalid escape directive {other:?}: use \\ or `"),
                    )
                }
            };
        }
        i += 1;
    }
    let mut instructions = Vec::new();
    while i < lines.len() {
        let start = i;
        let first = lines[i];
        i += 1;
        let trimmed = first.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let mut joined = String::new();
        let mut cur = first.trim_end();
        loop {
            match cur.strip_suffix(escape) {
                Some(body) => {
                    joined.push_str(body);
                    // Skip comment and blank lines inside the continuation.
                    while i < lines.len() && {
                        let t = lines[i].trim_start();
                        t.starts_with('#') || t.is_empty()
                    } {
                        i += 1;
                    }
                    if i >= lines.len() {
                        break;
                    }
                    cur = lines[i].trim_end();
                    i += 1;
                }
                None => {
                    joined.push_str(cur);
                    break;
                }
            }
        }
        instructions.push(instruction(start + 1, joined.trim())?);
    }
    Ok(Containerfile {
        escape,
        instructions,
    })
}

fn directive(line: &str) -> Option<(String, String)> {
    let rest = line.trim().strip_prefix('#')?;
    let (k, v) = rest.split_once('=')?;
    let k = k.trim();
    if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    Some((k.to_ascii_lowercase(), v.trim().to_string()))
}

fn instruction(line: usize, text: &str) -> Result<Instruction, ParseError> {
    let (word, mut rest) = match text.find(char::is_whitespace) {
        Some(n) => (&text[..n], text[n..].trim_start()),
        None => (text, ""),
    };
    let Some(keyword) = Keyword::parse(word) else {
        return err(line, format!("unknown instruction {word:?}"));
    };
    let mut flags = Vec::new();
    while let Some(f) = rest.strip_prefix("--") {
        let end = f.find(char::is_whitespace).unwrap_or(f.len());
        let (name, value) = match f[..end].split_once('=') {
            Some((n, v)) => (n.to_string(), v.to_string()),
            None => (f[..end].to_string(), "true".to_string()),
        };
        if !keyword.flags().contains(&name.as_str()) {
            return err(
                line,
                format!("{keyword} does not support the flag --{name}"),
            );
        }
        flags.push((name, value));
        rest = f[end..].trim_start();
    }
    let args = match rest.strip_prefix('[') {
        Some(_) if rest.ends_with(']') => match serde_json::from_str::<Vec<String>>(rest) {
            Ok(v) => Args::Json(v),
            Err(_) => Args::Raw(rest.to_string()),
        },
        _ => Args::Raw(rest.to_string()),
    };
    if matches!(&args, Args::Raw(r) if r.is_empty()) && !matches!(keyword, Keyword::Healthcheck) {
        return err(line, format!("{keyword} needs arguments"));
    }
    Ok(Instruction {
        line,
        keyword,
        flags,
        args,
        text: format!("{} {}", keyword, text[word.len()..].trim_start()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuations_comments_and_lines() {
        let cf = parse(
            "# syntax=docker/dockerfile:1\n\nFROM scratch AS base\n# comment\nRUN echo a \\\n  # inner comment\n\n  b\nCMD [\"sh\", \"-c\", \"echo hi\"]\n",
        )
        .expect("parses");
        assert_eq!(cf.instructions.len(), 3);
        assert_eq!(cf.instructions[0].line, 3);
        assert_eq!(cf.instructions[1].line, 5);
        assert_eq!(cf.instructions[1].args, Args::Raw("echo a   b".into()));
        assert_eq!(
            cf.instructions[2].args,
            Args::Json(vec!["sh".into(), "-c".into(), "echo hi".into()])
        );
    }

    #[test]
    fn escape_directive() {
        let cf = parse("# escape=`\nFROM scratch\nRUN a `\n b\\c\n").expect("parses");
        assert_eq!(cf.escape, '`');
        assert_eq!(cf.instructions[1].args, Args::Raw("a  b\\c".into()));
    }

    #[test]
    fn flags_and_errors() {
        let cf = parse("FROM scratch\nCOPY --from=build --chown=1:2 a b\n").expect("parses");
        assert_eq!(cf.instructions[1].flag("from"), Some("build"));
        assert_eq!(cf.instructions[1].flag("chown"), Some("1:2"));
        let e = parse("FROM scratch\n\nFROBNICATE x\n").expect_err("fails");
        assert_eq!(e.line, 3);
        assert!(e.msg.contains("FROBNICATE"));
        let e = parse("FROM scratch\nRUN --network=host true\n").expect_err("fails");
        assert_eq!(e.line, 2);
        let e = parse("FROM scratch\nCOPY\n").expect_err("fails");
        assert_eq!(e.line, 2);
    }

    #[test]
    fn not_json_is_shell_form() {
        let cf = parse("RUN [not json]\n").expect("parses");
        assert_eq!(cf.instructions[0].args, Args::Raw("[not json]".into()));
    }
}
