//! Manifest validation: a pushed manifest must be a JSON object of a media type the
//! registry stores, and follow that type's schema:
//!
//! - OCI image manifest and index: image-spec `manifest.md`, `image-index.md`,
//!   `descriptor.md` (the schemas in image-spec `schema/`);
//! - Docker image manifest v2 schema 2 and manifest list (distribution's
//!   `docs/spec/manifest-v2-2.md`).
//!
//! Artifacts are OCI image manifests with an `artifactType` (image-spec `manifest.md`,
//! "Guidelines for Artifact Usage"); any other media type is refused, so nothing but a
//! manifest is ever served back with a manifest's `Content-Type`.

use crate::media;
use crate::reference::{parse_digest, Digest};
use serde_json::{Map, Value};

/// Why a manifest was refused (the message names the field).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct Invalid(pub String);

fn invalid(s: impl Into<String>) -> Invalid {
    Invalid(s.into())
}

/// What a manifest references: blobs (config, layers) and child manifests.
#[derive(Debug)]
pub struct Refs {
    /// Digests and the sizes the descriptors state.
    pub blobs: Vec<(Digest, u64)>,
    pub manifests: Vec<Digest>,
    pub subject: Option<Digest>,
}

/// Whether `s` is a media type as image-spec `descriptor.md` requires: RFC 6838 §4.2
/// `type "/" subtype`, each a restricted-name (1–127 characters, starting with a letter
/// or digit, then letters, digits and `!#$&-^_.+`), without parameters.
pub fn valid_media_type(s: &str) -> bool {
    fn restricted_name(n: &str) -> bool {
        let b = n.as_bytes();
        !b.is_empty()
            && b.len() <= 127
            && b[0].is_ascii_alphanumeric()
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(c))
    }
    match s.split_once('/') {
        Some((t, sub)) => restricted_name(t) && restricted_name(sub),
        None => false,
    }
}

/// The media type of a manifest push: the `Content-Type`, else the body's `mediaType`;
/// both must agree when both are given, and the type must be one the registry stores.
pub fn media_type(content_type: Option<&str>, v: &Value) -> Result<String, Invalid> {
    let field = match v.get("mediaType") {
        None => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err(invalid("mediaType must be a string")),
    };
    let mt = match (content_type, field) {
        (Some(h), Some(f)) if h != f => {
            return Err(invalid(format!(
                "Content-Type {h:?} differs from the manifest's mediaType {f:?}"
            )))
        }
        (Some(h), _) => h,
        (None, Some(f)) => f,
        (None, None) => return Err(invalid("no Content-Type and no mediaType")),
    };
    if !media::ALL_MANIFESTS.contains(&mt) {
        return Err(invalid(format!(
            "{mt:?} is not a manifest type this registry stores (OCI image manifest or \
             index, Docker manifest v2 or manifest list; an artifact is an OCI image \
             manifest with an artifactType)"
        )));
    }
    Ok(mt.to_string())
}

fn object<'a>(v: &'a Value, field: &str) -> Result<&'a Map<String, Value>, Invalid> {
    v.as_object()
        .ok_or_else(|| invalid(format!("{field} must be an object")))
}

fn opt_string<'a>(
    o: &'a Map<String, Value>,
    key: &str,
    field: &str,
) -> Result<Option<&'a str>, Invalid> {
    match o.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(format!("{field}.{key} must be a string"))),
    }
}

fn string<'a>(o: &'a Map<String, Value>, key: &str, field: &str) -> Result<&'a str, Invalid> {
    opt_string(o, key, field)?.ok_or_else(|| invalid(format!("{field}.{key} is missing")))
}

/// `annotations`: a map of strings to strings (image-spec `annotations.md`).
fn annotations(o: &Map<String, Value>, field: &str) -> Result<(), Invalid> {
    match o.get("annotations") {
        None => Ok(()),
        Some(Value::Object(m)) if m.values().all(Value::is_string) => Ok(()),
        Some(_) => Err(invalid(format!(
            "{field}.annotations must map strings to strings"
        ))),
    }
}

fn artifact_type(o: &Map<String, Value>, field: &str) -> Result<Option<String>, Invalid> {
    match opt_string(o, "artifactType", field)? {
        None => Ok(None),
        Some(t) if valid_media_type(t) => Ok(Some(t.to_string())),
        Some(t) => Err(invalid(format!(
            "{field}.artifactType {t:?} is not a media type (RFC 6838)"
        ))),
    }
}

/// A descriptor (image-spec `descriptor.md`): `mediaType`, `digest` and `size` are
/// REQUIRED; `urls`, `annotations`, `artifactType` and `data` are checked when present.
/// Returns the digest and size.
fn descriptor(v: &Value, field: &str) -> Result<(Digest, u64), Invalid> {
    let o = object(v, field)?;
    let mt = string(o, "mediaType", field)?;
    if !valid_media_type(mt) {
        return Err(invalid(format!(
            "{field}.mediaType {mt:?} is not a media type (RFC 6838)"
        )));
    }
    let d = string(o, "digest", field)?;
    let d = parse_digest(d).map_err(|e| invalid(format!("{field}.digest: {e}")))?;
    // int64, not negative: serde_json keeps integers apart from floats.
    let size = match o.get("size") {
        Some(Value::Number(n)) => n
            .as_u64()
            .filter(|s| *s <= i64::MAX as u64)
            .ok_or_else(|| invalid(format!("{field}.size must be an integer of 0 or more")))?,
        Some(_) => return Err(invalid(format!("{field}.size must be a number"))),
        None => return Err(invalid(format!("{field}.size is missing"))),
    };
    match o.get("urls") {
        None => {}
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => {}
        Some(_) => return Err(invalid(format!("{field}.urls must be an array of strings"))),
    }
    opt_string(o, "data", field)?;
    annotations(o, field)?;
    artifact_type(o, field)?;
    Ok((d, size))
}

fn schema_version(o: &Map<String, Value>) -> Result<(), Invalid> {
    match o.get("schemaVersion").and_then(Value::as_u64) {
        Some(2) => Ok(()),
        _ => Err(invalid("schemaVersion must be 2")),
    }
}

fn array<'a>(o: &'a Map<String, Value>, key: &str) -> Result<&'a [Value], Invalid> {
    match o.get(key) {
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(invalid(format!("{key} must be an array"))),
        None => Err(invalid(format!("{key} is missing"))),
    }
}

/// `platform` of an index entry (image-spec `image-index.md`): `architecture` and `os`
/// REQUIRED strings.
fn platform(v: &Value, field: &str) -> Result<(), Invalid> {
    let o = object(v, field)?;
    string(o, "architecture", field)?;
    string(o, "os", field)?;
    opt_string(o, "os.version", field)?;
    opt_string(o, "variant", field)?;
    Ok(())
}

/// Validates a manifest of media type `mt` (one of [`media::ALL_MANIFESTS`]) and lists
/// what it references.
pub fn validate(mt: &str, v: &Value) -> Result<Refs, Invalid> {
    let o = object(v, "manifest")?;
    schema_version(o)?;
    annotations(o, "manifest")?;
    let mut refs = Refs {
        blobs: Vec::new(),
        manifests: Vec::new(),
        subject: None,
    };
    if let Some(s) = o.get("subject") {
        refs.subject = Some(descriptor(s, "subject")?.0);
    }
    let artifact = artifact_type(o, "manifest")?;
    match mt {
        media::OCI_MANIFEST | media::DOCKER_MANIFEST => {
            if mt == media::DOCKER_MANIFEST && o.get("mediaType").is_none() {
                return Err(invalid(
                    "mediaType is missing (Docker manifest v2 requires it)",
                ));
            }
            let config = o
                .get("config")
                .ok_or_else(|| invalid("config is missing"))?;
            let (cd, cs) = descriptor(config, "config")?;
            // image-spec manifest.md: with the empty config, artifactType MUST be set.
            let config_mt = config.get("mediaType").and_then(Value::as_str);
            if config_mt == Some("application/vnd.oci.empty.v1+json") && artifact.is_none() {
                return Err(invalid(
                    "an artifact (config of the empty media type) needs an artifactType",
                ));
            }
            refs.blobs.push((cd, cs));
            for (i, l) in array(o, "layers")?.iter().enumerate() {
                let (d, size) = descriptor(l, &format!("layers[{i}]"))?;
                // Non-distributable (foreign) layers are fetched from their urls.
                let foreign = l
                    .get("urls")
                    .and_then(Value::as_array)
                    .is_some_and(|u| !u.is_empty());
                if !foreign {
                    refs.blobs.push((d, size));
                }
            }
        }
        media::OCI_INDEX | media::DOCKER_LIST => {
            if mt == media::DOCKER_LIST && o.get("mediaType").is_none() {
                return Err(invalid(
                    "mediaType is missing (Docker manifest list requires it)",
                ));
            }
            for (i, m) in array(o, "manifests")?.iter().enumerate() {
                let field = format!("manifests[{i}]");
                let (d, _) = descriptor(m, &field)?;
                match m.get("platform") {
                    Some(p) => platform(p, &format!("{field}.platform"))?,
                    None if mt == media::DOCKER_LIST => {
                        return Err(invalid(format!("{field}.platform is missing")))
                    }
                    None => {}
                }
                refs.manifests.push(d);
            }
        }
        other => return Err(invalid(format!("{other:?} is not a manifest type"))),
    }
    Ok(refs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn d() -> String {
        Digest::of(crate::reference::Algorithm::Sha256, b"x").to_string()
    }

    #[test]
    fn media_types() {
        assert!(valid_media_type(
            "application/vnd.oci.image.manifest.v1+json"
        ));
        assert!(valid_media_type("text/html"));
        assert!(!valid_media_type("text/html; charset=utf-8"));
        assert!(!valid_media_type("application/"));
        assert!(!valid_media_type("<script>/x"));
        assert!(!valid_media_type("a/b/c"));
    }

    #[test]
    fn an_image_manifest_and_what_it_references() {
        let v = json!({
            "schemaVersion": 2,
            "config": {"mediaType": "a/b", "digest": d(), "size": 1},
            "layers": [{"mediaType": "a/c", "digest": d(), "size": 1},
                       {"mediaType": "a/c", "digest": d(), "size": 1, "urls": ["http://x"]}],
        });
        let r = validate(media::OCI_MANIFEST, &v).expect("valid");
        assert_eq!(r.blobs.len(), 2);
        let bad = json!({"schemaVersion": 2, "config": {"mediaType": "a/b", "digest": "sha256:../x", "size": 1}, "layers": []});
        assert!(validate(media::OCI_MANIFEST, &bad).is_err());
    }

    #[test]
    fn content_type_and_media_type_must_agree() {
        let v = json!({"mediaType": media::OCI_MANIFEST});
        assert!(media_type(Some(media::OCI_INDEX), &v).is_err());
        assert!(media_type(Some("text/html"), &json!({})).is_err());
        assert_eq!(
            media_type(None, &v).expect("from the body"),
            media::OCI_MANIFEST
        );
    }

    mod prop {
        use super::super::*;
        use proptest::prelude::*;
        use serde_json::json;

        fn json_value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                any::<f64>().prop_map(
                    |f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
                ),
                "[a-z/.+:0-9]{0,20}".prop_map(Value::from),
                Just(Value::from(
                    "sha256:2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"
                )),
            ];
            leaf.prop_recursive(4, 48, 6, |inner| {
                let keys = prop_oneof![
                    Just("schemaVersion".to_string()),
                    Just("mediaType".to_string()),
                    Just("config".to_string()),
                    Just("layers".to_string()),
                    Just("manifests".to_string()),
                    Just("digest".to_string()),
                    Just("size".to_string()),
                    Just("platform".to_string()),
                    Just("subject".to_string()),
                    Just("artifactType".to_string()),
                    Just("annotations".to_string()),
                    Just("urls".to_string()),
                    "[a-z]{1,6}",
                ];
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                    prop::collection::btree_map(keys, inner, 0..6)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        fn good() -> Value {
            let d = "sha256:2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881";
            json!({
                "schemaVersion": 2,
                "mediaType": media::OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": d, "size": 1},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": 1}],
            })
        }

        proptest! {
            #[test]
            fn any_json_is_validated_without_panic(
                v in json_value(),
                mt in prop::sample::select(media::ALL_MANIFESTS.to_vec()),
                ct in prop::option::of("[a-z./+]{0,30}"),
            ) {
                if let Err(e) = validate(mt, &v) {
                    prop_assert!(!e.0.is_empty());
                }
                if let Err(e) = media_type(ct.as_deref(), &v) {
                    prop_assert!(!e.0.is_empty());
                }
            }

            #[test]
            fn a_changed_field_of_a_good_manifest_is_refused_or_still_valid(
                path in prop::sample::select(vec![
                    "/schemaVersion", "/config", "/config/digest", "/config/size",
                    "/config/mediaType", "/layers", "/layers/0", "/layers/0/size",
                    "/layers/0/digest", "/layers/0/mediaType",
                ]),
                replacement in json_value(),
            ) {
                let mut v = good();
                prop_assert!(validate(media::OCI_MANIFEST, &v).is_ok());
                if let Some(slot) = v.pointer_mut(path) {
                    *slot = replacement;
                }
                match validate(media::OCI_MANIFEST, &v) {
                    // Whatever passes references only well-formed digests.
                    Ok(r) => prop_assert!(r.blobs.iter().all(|(d, _)| d.hex().len() == 64)),
                    Err(e) => {
                        let field = path.trim_start_matches('/').split('/').next().unwrap_or("");
                        prop_assert!(
                            e.0.contains(field) || e.0.contains("schemaVersion") || e.0.contains("manifest"),
                            "refusal {:?} does not name {}", e.0, path
                        );
                    }
                }
            }

            #[test]
            fn media_types_never_panic(s in any::<String>()) {
                let ok = valid_media_type(&s);
                if ok {
                    prop_assert!(s.is_ascii() && s.contains('/') && !s.contains(';'));
                }
            }
        }
    }
}
