//! Builder tests that need no root: metadata instructions (FROM scratch, no filesystem
//! step) against an in-memory backend.

use super::*;
use crate::backend::BaseImage;
use std::cell::RefCell;

#[derive(Default)]
struct Memory {
    committed: RefCell<Vec<(Vec<u8>, Vec<String>)>>,
}

impl Backend for Memory {
    fn image(&self, _: &str) -> Result<Option<BaseImage>, BackendError> {
        Ok(None)
    }
    fn layer_dirs(&self, _: &[LayerRef]) -> Result<Vec<PathBuf>, BackendError> {
        Err("no layers in memory".into())
    }
    fn has_layer(&self, _: &[LayerRef]) -> bool {
        false
    }
    fn put_layer(
        &self,
        _: &[String],
        _: &LayerRef,
        _: &Path,
        _: &Path,
    ) -> Result<(), BackendError> {
        Err("no layers in memory".into())
    }
    fn commit_image(
        &self,
        config: &[u8],
        _: &[LayerRef],
        tags: &[String],
    ) -> Result<String, BackendError> {
        self.committed
            .borrow_mut()
            .push((config.to_vec(), tags.to_vec()));
        Ok(format!("sha256:{:x}", sha2::Sha256::digest(config)))
    }
}

use sha2::Digest as _;

fn options(cf: &str, args: &[(&str, &str)], target: Option<&str>) -> Options {
    let tmp = std::env::temp_dir().join(format!("berth-builder-{}", std::process::id()));
    Options {
        context: std::env::temp_dir(),
        containerfile: cf.to_string(),
        tags: vec!["t:1".into()],
        build_args: args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        target: target.map(String::from),
        no_cache: false,
        quiet: false,
        runtime: PathBuf::from("/nonexistent"),
        runtime_state: tmp.join("state"),
        work_dir: tmp.join("work"),
        cache_dir: tmp.join("cache"),
        source_date_epoch: Some(0),
    }
}

fn config_of(cf: &str, args: &[(&str, &str)], target: Option<&str>) -> (serde_json::Value, String) {
    let m = Memory::default();
    let mut out = Vec::new();
    build(&m, &options(cf, args, target), &mut out).expect("builds");
    let (cfg, _) = m.committed.borrow()[0].clone();
    (
        serde_json::from_slice(&cfg).expect("config is JSON"),
        String::from_utf8_lossy(&out).into_owned(),
    )
}

#[test]
fn metadata_instructions_land_in_the_config() {
    let cf = r#"ARG V=1
FROM scratch AS one
ARG V
ENV A=$V B="two words" \
    C=${MISSING:-dflt}
WORKDIR /app
WORKDIR sub
USER 1000:1000
EXPOSE 80 53/udp
LABEL k=v "x y"=z
VOLUME ["/data"]
STOPSIGNAL SIGTERM
SHELL ["/bin/ash", "-eo", "pipefail", "-c"]
HEALTHCHECK --interval=30s --retries=3 CMD wget -q localhost || exit 1
ENTRYPOINT ["/bin/app"]
CMD run --fast
MAINTAINER someone
"#;
    let (c, out) = config_of(cf, &[("V", "7")], None);
    let rc = &c["config"];
    assert_eq!(
        rc["Env"],
        serde_json::json!([
            format!("PATH={}", config::DEFAULT_PATH),
            "A=7",
            "B=two words",
            "C=dflt"
        ])
    );
    assert_eq!(rc["WorkingDir"], "/app/sub");
    assert_eq!(rc["User"], "1000:1000");
    assert_eq!(
        rc["ExposedPorts"],
        serde_json::json!({"80/tcp": {}, "53/udp": {}})
    );
    assert_eq!(rc["Labels"], serde_json::json!({"k": "v", "x y": "z"}));
    assert_eq!(rc["Volumes"], serde_json::json!({"/data": {}}));
    assert_eq!(rc["StopSignal"], "SIGTERM");
    assert_eq!(rc["Entrypoint"], serde_json::json!(["/bin/app"]));
    assert_eq!(
        rc["Cmd"],
        serde_json::json!(["/bin/ash", "-eo", "pipefail", "-c", "run --fast"])
    );
    assert_eq!(
        rc["Healthcheck"],
        serde_json::json!({"Test": ["CMD-SHELL", "wget -q localhost || exit 1"], "Interval": 30_000_000_000u64, "Retries": 3})
    );
    assert_eq!(c["author"], "someone");
    assert_eq!(c["created"], "1970-01-01T00:00:00Z");
    assert_eq!(c["history"].as_array().map(Vec::len), Some(14));
    assert!(out.contains("STEP 15/15: MAINTAINER someone"), "{out}");
}

#[test]
fn targets_and_stage_inheritance() {
    let cf = "FROM scratch AS a\nENV X=1\nCMD [\"a\"]\nFROM a AS b\nENTRYPOINT [\"e\"]\nFROM scratch\nENV Y=2\n";
    let (c, _) = config_of(cf, &[], Some("b"));
    // b inherits a's ENV; its ENTRYPOINT resets the inherited CMD.
    assert!(c["config"]["Env"]
        .as_array()
        .expect("env")
        .contains(&"X=1".into()));
    assert_eq!(c["config"]["Entrypoint"], serde_json::json!(["e"]));
    assert!(c["config"].get("Cmd").is_none(), "{c}");
    let (c, _) = config_of(cf, &[], None);
    assert!(!c["config"]["Env"]
        .as_array()
        .expect("env")
        .contains(&"X=1".into()));
}

#[test]
fn errors_carry_the_line() {
    let m = Memory::default();
    let cases = [
        ("FROM scratch\nSHELL /bin/sh\n", 2),
        ("RUN true\nFROM scratch\n", 1),
        ("FROM scratch\nHEALTHCHECK --interval=soon CMD true\n", 2),
        ("FROM scratch\n\nENV A=${B\n", 3),
    ];
    for (cf, line) in cases {
        let e = build(&m, &options(cf, &[], None), &mut Vec::new()).expect_err(cf);
        let msg = format!("{e}");
        assert!(msg.contains(&format!("line {line}")), "{cf:?}: {msg}");
    }
    let e = build(
        &m,
        &options("FROM scratch\n", &[], Some("nope")),
        &mut Vec::new(),
    )
    .expect_err("no target");
    assert!(format!("{e}").contains("nope"));
}
