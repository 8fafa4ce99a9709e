//! Property tests of the parsers of outside JSON: manifests, indexes and configs (as the
//! store reads them), and an archive's `index.json` / `manifest.json` (as `load` reads
//! them). Arbitrary bytes and arbitrary JSON shaped like the real documents: no panic, and
//! every refusal is an error that names what it is about.

use crate::apply::tests::tmpdir;
use crate::oci::{self, Document};
use crate::ImageStore;
use content::Digest;
use proptest::prelude::*;
use serde_json::Value;

fn digest_of(s: &str) -> String {
    Digest::sha256(s.as_bytes()).to_string()
}

fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(oci::OCI_MANIFEST.to_string()),
        Just(oci::OCI_INDEX.to_string()),
        Just(oci::OCI_CONFIG.to_string()),
        Just(oci::OCI_LAYER_GZIP.to_string()),
        Just(oci::DOCKER_MANIFEST.to_string()),
        Just(oci::DOCKER_LIST.to_string()),
        Just("linux".to_string()),
        Just("amd64".to_string()),
        Just("layers".to_string()),
        Just(digest_of("a")),
        Just("sha256:zz".to_string()),
        Just("md5:00".to_string()),
        Just("sha512:".to_string() + &"0".repeat(128)),
        Just("blobs/sha256/x".to_string()),
        Just("../../etc/passwd".to_string()),
        "[ -~]{0,12}",
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("schemaVersion"),
        Just("mediaType"),
        Just("manifests"),
        Just("config"),
        Just("layers"),
        Just("digest"),
        Just("size"),
        Just("platform"),
        Just("os"),
        Just("architecture"),
        Just("annotations"),
        Just("rootfs"),
        Just("diff_ids"),
        Just("type"),
        Just("org.opencontainers.image.ref.name"),
        Just("io.containerd.image.name"),
        Just("Config"),
        Just("Layers"),
        Just("RepoTags"),
    ]
    .prop_map(str::to_string)
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (0u64..4).prop_map(Value::from),
        string().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec((key(), inner), 0..7)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A document that is mostly right: a manifest or index skeleton with fuzzed parts.
fn document() -> impl Strategy<Value = Value> {
    (json(), json(), json(), string(), any::<bool>()).prop_map(|(a, b, c, mt, index)| {
        if index {
            serde_json::json!({"schemaVersion": 2, "mediaType": mt, "manifests": [a, b], "x": c})
        } else {
            serde_json::json!({"schemaVersion": 2, "mediaType": mt, "config": a, "layers": [b, c]})
        }
    })
}

/// Walks what a parsed document leads to, as the store and load do.
fn exercise(doc: &Document) {
    match doc {
        Document::Index(i) => {
            if let Ok(d) = oci::choose_platform(i) {
                let _ = oci::descriptor_digest(d);
            }
        }
        Document::Manifest(m) => {
            let _ = oci::descriptor_digest(m.config());
            for l in m.layers() {
                let _ = oci::descriptor_digest(l);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn documents_from_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        match oci::parse_document(&bytes, "manifest X") {
            Ok(d) => exercise(&d),
            Err(e) => prop_assert!(e.to_string().starts_with("manifest X: "), "{e}"),
        }
    }

    #[test]
    fn documents_from_json(v in prop_oneof![json(), document()]) {
        let bytes = serde_json::to_vec(&v).expect("json");
        match oci::parse_document(&bytes, "manifest X") {
            Ok(d) => exercise(&d),
            Err(e) => prop_assert!(e.to_string().starts_with("manifest X: "), "{e}"),
        }
    }

    /// A manifest and a config from outside, read by the store (`image`, its layers and
    /// ChainIDs): errors name the manifest or the config.
    #[test]
    fn store_reads_hostile_manifests_and_configs(config in json(), manifest in document(), layers in json()) {
        let t = tmpdir("propdocs");
        let s = ImageStore::open(t.join("root")).expect("open");
        let cbytes = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux", "rootfs": config, "config": layers,
        })).expect("json");
        let cd = s.content().write(&cbytes, None).expect("config");
        let mut manifest = manifest;
        if manifest.get("config").is_some() {
            manifest["config"] = serde_json::json!({
                "mediaType": oci::OCI_CONFIG, "digest": cd.to_string(), "size": cbytes.len(),
            });
        }
        let mbytes = serde_json::to_vec(&manifest).expect("json");
        let md = s.content().write(&mbytes, None).expect("manifest");
        let result = s.image(&md).and_then(|img| {
            img.chain_ids()?;
            img.layers()
        });
        let _ = std::fs::remove_dir_all(&t);
        if let Err(e) = result {
            let msg = e.to_string();
            prop_assert!(
                msg.contains("manifest") || msg.contains("config") || msg.contains("index")
                    || msg.contains("digest") || msg.contains("blob"),
                "{msg}"
            );
        }
    }

    /// `load` of an archive whose `index.json` or `manifest.json` is hostile: no panic,
    /// a refusal names the file or the blob, and nothing is named.
    #[test]
    fn load_reads_hostile_archive_metadata(v in prop_oneof![json(), document()], docker in any::<bool>()) {
        let t = tmpdir("propload");
        let s = ImageStore::open(t.join("root")).expect("open");
        let body = serde_json::to_vec(&v).expect("json");
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        let name = if docker { "manifest.json" } else { "index.json" };
        b.append_data(&mut h, name, &body[..]).expect("tar");
        let blob = b"{}";
        let mut h = tar::Header::new_ustar();
        h.set_size(blob.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        let path = format!("blobs/sha256/{}", Digest::sha256(blob).hex());
        b.append_data(&mut h, path, &blob[..]).expect("tar");
        let archive = b.into_inner().expect("tar");
        let result = crate::archive::load_stream(&s, &archive[..]);
        let names = s.names().expect("names");
        let _ = std::fs::remove_dir_all(&t);
        match result {
            Ok(loaded) => prop_assert_eq!(loaded.len(), names.len()),
            Err(e) => {
                prop_assert!(!e.to_string().is_empty());
                prop_assert!(names.is_empty(), "named after a failed load: {:?}", names);
            }
        }
    }
}
