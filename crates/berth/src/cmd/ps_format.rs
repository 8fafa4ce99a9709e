//! `ps --filter` (Docker's: the same key repeated is OR, different keys are AND) and
//! `ps --format` with Go-template fields (`{{.ID}}\t{{.Names}}`, `table …`, `json`).
//! `--format json` is Docker's `{{json .}}`: one object per line with the template's
//! fields, all strings (docker/cli `formatter.ContainerContext`).

use super::ps::command;
use anyhow::{bail, Result};
use engine::volumes::Mount;
use engine::Container;
use std::collections::BTreeMap;

/// Parsed `--filter KEY=VALUE` options.
#[derive(Debug, Default)]
pub struct Filters {
    by_key: BTreeMap<String, Vec<String>>,
}

const KEYS: &[&str] = &["id", "name", "status", "label", "ancestor"];
const STATUSES: &[&str] = &[
    "created",
    "restarting",
    "running",
    "removing",
    "paused",
    "exited",
    "dead",
];

impl Filters {
    pub fn parse(args: &[String]) -> Result<Filters> {
        let mut f = Filters::default();
        for a in args {
            let Some((k, v)) = a.split_once('=') else {
                bail!(
                    "--filter {a:?}: expected KEY=VALUE (keys: {})",
                    KEYS.join(", ")
                );
            };
            if !KEYS.contains(&k) {
                bail!(
                    "--filter {a:?}: unknown filter {k:?} (keys: {})",
                    KEYS.join(", ")
                );
            }
            if k == "status" && !STATUSES.contains(&v) {
                bail!(
                    "--filter {a:?}: invalid status {v:?} (one of {})",
                    STATUSES.join(", ")
                );
            }
            f.by_key
                .entry(k.to_string())
                .or_default()
                .push(v.to_string());
        }
        Ok(f)
    }

    /// A status filter lists stopped containers without `-a` (as Docker's).
    pub fn implies_all(&self) -> bool {
        self.by_key.contains_key("status")
    }

    /// Whether `c` passes; `image_ids` resolves an ancestor to its image's manifest digest.
    pub fn matches(&self, c: &Container, image_id: &dyn Fn(&str) -> Option<String>) -> bool {
        self.by_key.iter().all(|(k, vals)| {
            vals.iter().any(|v| match k.as_str() {
                "id" => c.id.starts_with(v.as_str()),
                "name" => c.name.contains(v.as_str()),
                "status" => c.state.as_str() == v,
                "label" => match v.split_once('=') {
                    Some((lk, lv)) => c.spec.labels.get(lk).is_some_and(|x| x == lv),
                    None => c.spec.labels.contains_key(v.as_str()),
                },
                "ancestor" => {
                    c.image == *v
                        || c.image_id == *v
                        || c.image_id
                            .strip_prefix("sha256:")
                            .is_some_and(|h| v.len() >= 4 && h.starts_with(v.as_str()))
                        || image_id(v).is_some_and(|d| d == c.image_id)
                }
                _ => false,
            })
        })
    }
}

/// One piece of a template.
#[derive(Debug, PartialEq)]
enum Piece {
    Text(String),
    Field(String),
    /// `{{json .Field}}` or `{{json .}}`.
    Json(String),
    /// `{{.Label "key"}}`.
    Label(String),
}

const FIELDS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Names", "NAMES"),
    ("Image", "IMAGE"),
    ("Command", "COMMAND"),
    ("CreatedAt", "CREATED AT"),
    ("RunningFor", "CREATED"),
    ("Status", "STATUS"),
    ("State", "STATE"),
    ("Ports", "PORTS"),
    ("Labels", "LABELS"),
    ("LocalVolumes", "LOCAL VOLUMES"),
    ("Mounts", "MOUNTS"),
    ("Networks", "NETWORKS"),
    ("Size", "SIZE"),
    ("Ready", "READY"),
];

/// What a row shows beside the container itself.
#[derive(Debug)]
pub struct Row {
    /// `Up 5 seconds (healthy)`, …
    pub status: String,
    /// Short IDs and commands cut to 20 characters (no `--no-trunc`).
    pub trunc: bool,
    /// Published ports, as the PORTS column (`0.0.0.0:8080->80/tcp`).
    pub ports: String,
    /// The readiness probe's verdict (`true`/`false`; empty without probes).
    pub ready: String,
}

/// Docker's `CreatedAt`: `2006-01-02 15:04:05 +0000 UTC` from our RFC 3339 UTC time.
fn created_at(t: &str) -> String {
    match (t.get(..10), t.get(11..19)) {
        (Some(d), Some(h)) if t.ends_with('Z') => format!("{d} {h} +0000 UTC"),
        _ => t.to_string(),
    }
}

/// A parsed `--format` template.
#[derive(Debug)]
pub struct Template {
    table: bool,
    pieces: Vec<Piece>,
}

impl Template {
    pub fn parse(format: &str) -> Result<Template> {
        let (table, body) = match format.strip_prefix("table") {
            Some(rest) if rest.is_empty() || rest.starts_with(char::is_whitespace) => {
                (true, rest.trim_start())
            }
            _ => (false, format),
        };
        // Docker's formatter turns the two characters `\t` and `\n` into a tab and newline.
        let body = body.replace("\\t", "\t").replace("\\n", "\n");
        let mut pieces = Vec::new();
        let mut rest = body.as_str();
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 2..];
            let Some(close) = after.find("}}") else {
                bail!("--format {format:?}: unclosed {{{{");
            };
            let action = after[..close].trim();
            pieces.push(Self::action(action, format)?);
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Ok(Template { table, pieces })
    }

    fn action(a: &str, format: &str) -> Result<Piece> {
        let field = |f: &str| -> Result<String> {
            let name = f.strip_prefix('.').unwrap_or("");
            if FIELDS.iter().any(|(n, _)| *n == name) {
                Ok(name.to_string())
            } else {
                bail!(
                    "--format {format:?}: unknown field {f:?} (fields: {})",
                    FIELDS
                        .iter()
                        .map(|(n, _)| format!(".{n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        };
        if let Some(arg) = a.strip_prefix("json ") {
            let arg = arg.trim();
            return Ok(Piece::Json(if arg == "." {
                String::new()
            } else {
                field(arg)?
            }));
        }
        if let Some(key) = a.strip_prefix(".Label ") {
            let key = key.trim().trim_matches('"');
            return Ok(Piece::Label(key.to_string()));
        }
        Ok(Piece::Field(field(a)?))
    }

    fn value(c: &Container, f: &str, row: &Row) -> String {
        match f {
            "ID" if row.trunc => c.short_id().to_string(),
            "ID" => c.id.clone(),
            "Names" => c.name.clone(),
            "Image" => c.image.clone(),
            // docker/cli: strconv.Quote of the command, cut to 20 characters unless --no-trunc.
            "Command" => {
                let cmd = command(c);
                let cmd = if row.trunc && cmd.chars().count() > 20 {
                    format!("{}…", cmd.chars().take(19).collect::<String>())
                } else {
                    cmd
                };
                serde_json::Value::from(cmd).to_string()
            }
            "CreatedAt" => created_at(&c.created),
            "RunningFor" => super::util::ago(&c.created),
            "Status" => row.status.clone(),
            "State" => c.state.as_str().to_string(),
            "Ports" => row.ports.clone(),
            "Ready" => row.ready.clone(),
            "Labels" => c
                .spec
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(","),
            // Volume names and bind sources, as Docker's MOUNTS column.
            "Mounts" => c
                .spec
                .mounts
                .iter()
                .filter_map(|m| match m {
                    Mount::Volume { source, .. } => Some(source.clone()),
                    Mount::Bind { source, .. } => Some(source.display().to_string()),
                    Mount::Tmpfs { .. } => None,
                })
                .chain(
                    c.spec
                        .opts
                        .volumes
                        .iter()
                        .filter_map(|v| v.split(':').next().map(str::to_string)),
                )
                .collect::<Vec<_>>()
                .join(","),
            "LocalVolumes" => c
                .spec
                .mounts
                .iter()
                .filter(|m| matches!(m, Mount::Volume { .. }))
                .count()
                .to_string(),
            // Sizes are not computed (Docker's without --size).
            "Size" => "0B".into(),
            // No networks, no published ports.
            _ => String::new(),
        }
    }

    /// Docker's `{{json .}}`: every field, as strings.
    pub fn json_of(c: &Container, row: &Row) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        for (f, _) in FIELDS {
            m.insert((*f).to_string(), Self::value(c, f, row).into());
        }
        serde_json::Value::Object(m)
    }

    fn render(&self, c: &Container, row: &Row) -> String {
        self.pieces
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.clone(),
                Piece::Field(f) => Self::value(c, f, row),
                Piece::Label(k) => c.spec.labels.get(k).cloned().unwrap_or_default(),
                Piece::Json(f) if f.is_empty() => Self::json_of(c, row).to_string(),
                Piece::Json(f) if f == "Labels" => {
                    serde_json::to_string(&c.spec.labels).unwrap_or_default()
                }
                Piece::Json(f) => serde_json::Value::from(Self::value(c, f, row)).to_string(),
            })
            .collect()
    }

    fn header(&self) -> String {
        self.pieces
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.clone(),
                Piece::Field(f) | Piece::Json(f) => FIELDS
                    .iter()
                    .find(|(n, _)| n == f)
                    .map_or_else(|| f.to_uppercase(), |(_, h)| (*h).to_string()),
                Piece::Label(k) => k.to_uppercase(),
            })
            .collect()
    }

    /// The output for `list`: one rendered line per container; a table gets a header
    /// and its tab-separated cells padded into columns (as Go's tabwriter: 3 spaces).
    pub fn output(&self, list: &[(Container, Row)]) -> String {
        let mut lines: Vec<String> = Vec::new();
        if self.table {
            lines.push(self.header());
        }
        lines.extend(list.iter().map(|(c, r)| self.render(c, r)));
        if !self.table {
            return lines.iter().map(|l| format!("{l}\n")).collect();
        }
        let cells: Vec<Vec<&str>> = lines.iter().map(|l| l.split('\t').collect()).collect();
        let mut out = String::new();
        for line in super::table::columns(&cells, 3) {
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse_and_refuse() {
        let t = Template::parse("table {{.ID}}\\t{{.Names}}").expect("ok");
        assert!(t.table);
        assert_eq!(t.header(), "CONTAINER ID\tNAMES");
        assert_eq!(
            created_at("2026-12-07T12:47:25.123Z"),
            "2026-12-07 12:47:25 +0000 UTC"
        );
        let e = Template::parse("{{.Nope}}").expect_err("bad").to_string();
        assert!(e.contains(".Nope"), "{e}");
        let e = Template::parse("{{.ID").expect_err("bad").to_string();
        assert!(e.contains("unclosed"), "{e}");
        let e = Filters::parse(&["colour=red".into()])
            .expect_err("bad")
            .to_string();
        assert!(e.contains("colour"), "{e}");
        let e = Filters::parse(&["status=sleepy".into()])
            .expect_err("bad")
            .to_string();
        assert!(e.contains("sleepy"), "{e}");
    }
}
