//! `ps --format json` as Docker prints it, `-t`/`-i` with `-d` and `attach` through the
//! monitor's attach socket, `start -a`. Root, real containers, a busybox image imported
//! locally.

use berth_tests::engine::*;
use serde_json::Value;

/// `ps --format json` is Docker's `{{json .}}`: one object per line, all strings, short
/// IDs (full with `--no-trunc`), the command quoted and cut to 20 characters.
#[test]
fn ps_format_json_is_one_docker_object_per_line() {
    let e = Eng::new("psjson");
    let a = e.run_d(&[
        "--name",
        "alpha",
        "--label",
        "env=prod",
        "busybox",
        "sh",
        "-c",
        "sleep 1000; echo this is long",
    ]);
    let b = e.run_d(&["--name", "beta", "busybox", "true"]);
    e.berth(&["wait", &b]).ok();
    let out = e.berth(&["ps", "-a", "--format", "json"]);
    out.ok();
    let rows: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|err| panic!("{l:?}: {err}\n{out}")))
        .collect();
    assert_eq!(rows.len(), 2, "{out}");
    let alpha = rows.iter().find(|r| r["Names"] == "alpha").expect("alpha");
    assert_eq!(alpha["ID"], &a[..12], "{alpha:#}");
    assert_eq!(alpha["Image"], "busybox");
    assert_eq!(alpha["Command"], "\"sh -c sleep 1000; e…\"", "{alpha:#}");
    assert_eq!(alpha["State"], "running");
    assert!(
        alpha["Status"]
            .as_str()
            .is_some_and(|s| s.starts_with("Up ")),
        "{alpha:#}"
    );
    assert_eq!(alpha["Labels"], "env=prod");
    let created = alpha["CreatedAt"].as_str().unwrap_or_default();
    assert!(
        created.len() == 29 && created.ends_with(" +0000 UTC") && &created[10..11] == " ",
        "CreatedAt {created:?} is not Docker's 2006-01-02 15:04:05 +0000 UTC"
    );
    for k in [
        "Mounts",
        "Networks",
        "Ports",
        "RunningFor",
        "Size",
        "LocalVolumes",
    ] {
        assert!(alpha[k].is_string(), "{k} missing: {alpha:#}");
    }
    let beta = rows.iter().find(|r| r["Names"] == "beta").expect("beta");
    assert_eq!(beta["State"], "exited");
    assert!(
        beta["Status"]
            .as_str()
            .is_some_and(|s| s.starts_with("Exited (0)")),
        "{beta:#}"
    );
    let full = e.berth(&["ps", "--no-trunc", "--format", "json"]);
    let v: Value = serde_json::from_str(full.ok().stdout.trim()).expect("one line");
    assert_eq!(v["ID"], a.as_str());
    assert_eq!(v["Command"], "\"sh -c sleep 1000; echo this is long\"");
    let q = e.berth(&["ps", "-q", "--no-trunc"]);
    assert_eq!(q.ok().stdout.trim(), a);
}
