//! Bad bundles and bad ids: each is refused with a non-zero exit and one line on stderr
//! naming what is wrong, and leaves nothing behind.

use berth_tests::*;
use serde_json::{json, Value};
use std::fs;

/// `create` must fail with exactly one stderr line mentioning one of `any_of`
/// (case-insensitive), and leave no state, cgroup, mount or process.
#[track_caller]
fn assert_rejected(b: &Bundle, any_of: &[&str]) -> Output {
    let out = b.create();
    out.failed();
    let lines: Vec<&str> = out.stderr.trim().lines().collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr:\n{out}");
    let err = out.stderr.to_lowercase();
    assert!(
        any_of.iter().any(|n| err.contains(&n.to_lowercase())),
        "the error names none of {any_of:?}:\n{out}"
    );
    assert_no_leftovers(b, &b.id, None);
    assert_state_root_empty(b);
    b.state().failed();
    out
}

fn namespaces(c: &mut Value) -> &mut Vec<Value> {
    c["linux"]["namespaces"].as_array_mut().expect("namespaces")
}

// runc says only "unexpected EOF".
#[test]
fn config_is_not_json() {
    let b = Bundle::new("notjson");
    b.write_raw_config("{ \"ociVersion\": \"1.0.2\", \"process\": ");
    assert_rejected(&b, &["config.json", "config"]);
}

#[test]
fn config_json_missing() {
    let b = Bundle::new("noconfig");
    fs::remove_file(b.config_path()).expect("rm config.json");
    assert_rejected(&b, &["config.json"]);
}

#[test]
fn wrong_type_for_uid() {
    let b = Bundle::new("uidtype").with(|c| c["process"]["user"]["uid"] = json!("abc"));
    assert_rejected(&b, &["uid"]);
}

#[test]
fn unknown_namespace_type() {
    let b = Bundle::new("nsfoo").with(|c| namespaces(c).push(json!({ "type": "foo" })));
    assert_rejected(&b, &["namespace"]);
}

// runc says "duplicated ns".
#[test]
fn duplicate_namespace_type() {
    let b = Bundle::new("nsdup").with(|c| namespaces(c).push(json!({ "type": "ipc" })));
    assert_rejected(&b, &["namespace"]);
}

#[test]
fn missing_process_args() {
    let b = Bundle::new("noargs").with(|c| {
        c["process"]
            .as_object_mut()
            .expect("process")
            .remove("args");
    });
    assert_rejected(&b, &["args"]);
}

#[test]
fn empty_process_args() {
    let b = Bundle::new("emptyargs").with(|c| c["process"]["args"] = json!([]));
    assert_rejected(&b, &["args"]);
}

// runc accepts it.
#[test]
fn relative_root_outside_the_bundle() {
    // The target exists and is a valid rootfs: it is refused for where it is.
    let outside = TempDir::new("outside");
    build_rootfs(&outside.join("rootfs"));
    let name = outside
        .path()
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    let b = Bundle::new("rootout")
        .with(|c| c["root"]["path"] = json!(format!("../{name}/rootfs")))
        .args(&["true"]);
    assert_rejected(&b, &["root.path", "root"]);
}

#[test]
fn root_path_does_not_exist() {
    let b = Bundle::new("rootmissing").with(|c| c["root"]["path"] = json!("no-such-rootfs"));
    assert_rejected(&b, &["root", "no-such-rootfs"]);
}

#[test]
fn user_namespace_without_mappings() {
    let b = Bundle::new("usernomap").with(|c| namespaces(c).push(json!({ "type": "user" })));
    assert_rejected(&b, &["mapping", "uidMappings"]);
}

// runc ignores the mappings.
#[test]
fn mappings_without_user_namespace() {
    let b = Bundle::new("mapnouser").with(|c| {
        let map = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
        c["linux"]["uidMappings"] = map.clone();
        c["linux"]["gidMappings"] = map;
    });
    assert_rejected(&b, &["mapping", "user"]);
}

#[test]
fn executable_not_found() {
    let b = Bundle::new("noexe").args(&["/bin/nonexistent"]);
    assert_rejected(&b, &["/bin/nonexistent"]);
}

#[test]
fn executable_not_in_path() {
    let b = Bundle::new("nopath").args(&["no-such-command"]);
    assert_rejected(&b, &["no-such-command"]);
}

#[test]
fn invalid_container_ids() {
    let b = Bundle::new("badid");
    let escape = b.state_root().join("..").join("x");
    let existed = escape.exists();
    for id in ["../x", "", "a/b", "..", "."] {
        let out = create(&b, id);
        out.failed();
        assert!(!out.stderr.trim().is_empty(), "no error message:\n{out}");
        assert_state_root_empty(&b);
        assert!(
            existed || !escape.exists(),
            "state written outside the root for id {id:?}"
        );
    }
    assert_no_leftovers(&b, &b.id, None);
}

#[test]
fn id_already_exists() {
    let b = Bundle::new("dupid").args(&["sleep", "100"]);
    b.create().ok();
    let pid = b.pid();
    let out = b.create();
    out.failed();
    assert!(!out.stderr.trim().is_empty(), "no error message:\n{out}");
    let st = b.state_json();
    assert_eq!(
        st["status"], "created",
        "the first container was disturbed: {st}"
    );
    assert_eq!(pid_of(&st), pid);
    b.force_delete_clean(Some(pid));
}

#[test]
fn missing_bind_source_is_reported_every_time() {
    // The init fails while the runtime is still talking to it: its report must win over
    // the broken channel, every time.
    let mut b = Bundle::new("nobindsrc").args(&["true"]);
    b.edit(|c| {
        c["mounts"].as_array_mut().expect("mounts").push(json!({
            "destination": "/x", "type": "bind", "source": "/nonexistent-berth-src",
            "options": ["rbind"]
        }))
    });
    for i in 0..8 {
        let id = format!("{}-{i}", b.id);
        let out = run(&b, &id);
        out.failed_mentioning(&["mounts[", "/nonexistent-berth-src"]);
        assert_no_leftovers(&b, &id, None);
    }
}

#[test]
fn hook_with_relative_path_or_zero_timeout() {
    let b = Bundle::new("badhookpath")
        .args(&["true"])
        .with(|c| c["hooks"] = json!({ "prestart": [{ "path": "bin/true" }] }));
    assert_rejected(&b, &["hooks.prestart[0].path"]);
    let b = Bundle::new("badhooktimeout")
        .args(&["true"])
        .with(|c| c["hooks"] = json!({ "poststop": [{ "path": "/bin/true", "timeout": 0 }] }));
    assert_rejected(&b, &["hooks.poststop[0].timeout"]);
}

#[test]
fn unknown_log_format_is_refused() {
    let b = Bundle::new("logfmt").args(&["true"]);
    b.rt(&["--log-format", "yaml", "list"])
        .failed_mentioning(&["yaml"]);
}

#[test]
fn update_with_resources_that_are_not_an_object() {
    let b = Bundle::new("updbad").args(&["sleep", "100"]);
    let pid = b.create_start();
    let file = b.dir().join("resources.json");
    fs::write(&file, "[1, 2]").expect("write resources");
    b.rt(&[
        "update",
        "--resources",
        &file.to_string_lossy(),
        "--memory",
        "67108864",
        &b.id,
    ])
    .failed_mentioning(&["--resources", "object"]);
    assert_eq!(b.status(), "running");
    b.force_delete_clean(Some(pid));
}
