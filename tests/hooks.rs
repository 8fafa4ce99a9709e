//! OCI hooks: all six kinds, their order, their namespaces, the state on their stdin, and
//! failures (a failing or timed-out hook fails `create` and leaves nothing behind).

use berth_tests::*;
use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(5);

/// Records its name (`$1`) in `$2/order`, its stdin in `$2/<name>.json` and its mount
/// namespace in `$2/<name>.mnt`.
const HOOK: &str = "#!/bin/sh\n\
cat > \"$2/$1.json\"\n\
readlink /proc/self/ns/mnt > \"$2/$1.mnt\"\n\
echo \"$1\" >> \"$2/order\"\n";

fn write_script(path: &Path, text: &str) {
    fs::write(path, text).expect("write hook script");
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod hook");
}

fn hook(path: &Path, name: &str, dir: &str) -> Value {
    json!({
        "path": path,
        "args": ["hook", name, dir],
        "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]
    })
}

// runc 1.1 runs poststart hooks during `create` (fixed in runc 1.2), so this fails there.
#[test]
fn all_hooks_run_in_order_with_the_state() {
    let log = TempDir::new("hooklog");
    let scripts = TempDir::new("hookbin");
    let host_hook = scripts.join("hook.sh");
    write_script(&host_hook, HOOK);
    let logdir = log.path().to_string_lossy().into_owned();
    let b = Bundle::new("hooks");
    // startContainer's path resolves inside the container: the script lives in the rootfs,
    // and the log dir is bind-mounted at /hooklog.
    write_script(&b.rootfs().join("hook.sh"), HOOK);
    fs::create_dir(b.rootfs().join("hooklog")).expect("mkdir");
    let b = b.bind(log.path(), "/hooklog", false).args(&["sleep", "100"]).with(|c| {
        c["hooks"] = json!({
            "prestart": [hook(&host_hook, "prestart", &logdir), hook(&host_hook, "prestart2", &logdir)],
            "createRuntime": [hook(&host_hook, "createRuntime", &logdir)],
            "createContainer": [hook(&host_hook, "createContainer", &logdir)],
            "startContainer": [{
                "path": "/hook.sh",
                "args": ["hook", "startContainer", "/hooklog"],
                "env": ["PATH=/bin"]
            }],
            "poststart": [hook(&host_hook, "poststart", &logdir)],
            "poststop": [hook(&host_hook, "poststop", &logdir)]
        });
        c["annotations"] = json!({ "org.berth.test": "hooks" });
    });
    let order = || fs::read_to_string(log.join("order")).unwrap_or_default();

    b.create().ok();
    let pid = b.pid();
    assert_eq!(
        order(),
        "prestart\nprestart2\ncreateRuntime\ncreateContainer\n",
        "hooks after create"
    );
    b.start().ok();
    assert_eq!(
        order(),
        "prestart\nprestart2\ncreateRuntime\ncreateContainer\nstartContainer\npoststart\n",
        "hooks after start"
    );
    b.kill("KILL").ok();
    b.wait_status("stopped", WAIT);
    b.delete().ok();
    assert_eq!(
        order(),
        "prestart\nprestart2\ncreateRuntime\ncreateContainer\nstartContainer\npoststart\npoststop\n",
        "hooks after delete"
    );
    assert_no_leftovers(&b, &b.id, Some(pid));

    let host_mnt = ns_of(std::process::id() as i32, "mnt");
    for name in [
        "prestart",
        "prestart2",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ] {
        let text = fs::read_to_string(log.join(format!("{name}.json"))).unwrap_or_default();
        let st: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{name} got no state JSON on stdin ({e}): {text:?}"));
        assert_eq!(st["id"], b.id.as_str(), "{name}: {st}");
        assert!(st["ociVersion"].is_string(), "{name}: {st}");
        let status = st["status"].as_str().unwrap_or_default();
        assert!(
            ["creating", "created", "running", "stopped"].contains(&status),
            "{name}: bad status {status:?}: {st}"
        );
        // The pid as seen from where the hook runs (the container has a pid namespace).
        match name {
            "poststop" => {}
            "createContainer" | "startContainer" => assert_eq!(st["pid"], 1, "{name}: {st}"),
            _ => assert_eq!(st["pid"], pid, "{name}: {st}"),
        }
        // state.md: the annotations of config.json, in every hook's state.
        assert_eq!(
            st["annotations"]["org.berth.test"], "hooks",
            "{name}: annotations missing: {st}"
        );
        let bundle = st["bundle"].as_str().unwrap_or_default();
        assert_eq!(
            fs::canonicalize(bundle).ok(),
            fs::canonicalize(b.dir()).ok(),
            "{name}: {st}"
        );
        // Where each ran: runtime namespace, or the container's.
        let mnt = fs::read_to_string(log.join(format!("{name}.mnt"))).unwrap_or_default();
        let in_container = matches!(name, "createContainer" | "startContainer");
        if in_container {
            assert_ne!(
                mnt.trim(),
                host_mnt,
                "{name} ran in the runtime mount namespace"
            );
        } else {
            assert_eq!(
                mnt.trim(),
                host_mnt,
                "{name} did not run in the runtime namespace"
            );
        }
    }
    let status = |n: &str| -> Value {
        serde_json::from_str::<Value>(
            &fs::read_to_string(log.join(format!("{n}.json"))).unwrap_or_default(),
        )
        .map(|v| v["status"].clone())
        .unwrap_or_default()
    };
    assert_eq!(status("poststart"), "running");
    assert_eq!(status("poststop"), "stopped");
}

#[test]
fn hook_timeout_fails_create() {
    let scripts = TempDir::new("hooktimeout");
    let slow = scripts.join("slow.sh");
    write_script(&slow, "#!/bin/sh\nexec sleep 20\n");
    let b = Bundle::new("hooktimeout")
        .args(&["true"])
        .with(|c| c["hooks"] = json!({ "createRuntime": [{ "path": slow, "timeout": 1 }] }));
    let t = Instant::now();
    let out = b.create();
    out.failed();
    assert!(!out.stderr.trim().is_empty(), "no error message:\n{out}");
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "create waited {:?} for a hook with a 1 s timeout",
        t.elapsed()
    );
    assert_no_leftovers(&b, &b.id, None);
    assert!(
        pids_with_cmdline(&slow.to_string_lossy()).is_empty(),
        "the timed-out hook is still running"
    );
}

#[test]
fn failing_prestart_hook_fails_create_and_leaves_nothing() {
    let scripts = TempDir::new("hookfail");
    let fail = scripts.join("fail.sh");
    write_script(
        &fail,
        "#!/bin/sh\ncat >/dev/null\necho hook-says-no >&2\nexit 3\n",
    );
    let marker = scripts.join("after");
    let after = scripts.join("after.sh");
    write_script(&after, &format!("#!/bin/sh\ntouch {}\n", marker.display()));
    let b = Bundle::new("hookfail").args(&["sleep", "100"]).with(|c| {
        c["hooks"] = json!({
            "prestart": [{ "path": fail }],
            "createContainer": [{ "path": after }]
        })
    });
    let out = b.create();
    out.failed();
    assert!(!out.stderr.trim().is_empty(), "no error message:\n{out}");
    assert!(!marker.exists(), "hooks after the failing one still ran");
    assert_no_leftovers(&b, &b.id, None);
    b.state().failed();
}

#[test]
fn hook_args_and_env_are_passed() {
    let log = TempDir::new("hookenv");
    let scripts = TempDir::new("hookenvbin");
    let script = scripts.join("env.sh");
    write_script(
        &script,
        "#!/bin/sh\ncat >/dev/null\necho \"$0|$1|$2|$HOOK_VAR\" > \"$OUT\"\n",
    );
    let out_file = log.join("out");
    let b = Bundle::new("hookenv").args(&["true"]).with(|c| {
        c["hooks"] = json!({ "createRuntime": [{
            "path": script,
            "args": ["ignored-argv0", "one", "two words"],
            "env": ["HOOK_VAR=hello", format!("OUT={}", out_file.display())]
        }]})
    });
    b.run().ok();
    assert_eq!(
        fs::read_to_string(&out_file).unwrap_or_default(),
        format!("{}|one|two words|hello\n", script.display())
    );
    // argv[0] is args[0]: busybox picks its applet by it.
    let out_file2 = log.join("out2");
    let b = Bundle::new("hookargv0").args(&["true"]).with(|c| {
        c["hooks"] = json!({ "createRuntime": [{
            "path": "/bin/busybox",
            "args": ["sh", "-c", "cat >/dev/null; echo \"argv0=$0 $1\" > \"$OUT\"", "zero", "first"],
            "env": [format!("OUT={}", out_file2.display())]
        }]})
    });
    b.run().ok();
    assert_eq!(
        fs::read_to_string(&out_file2).unwrap_or_default(),
        "argv0=zero first\n"
    );
}

#[test]
fn failing_start_container_hook_fails_start_and_skips_poststart() {
    // runtime.md: if a startContainer hook fails, `start` fails, the container stops and the
    // poststart hooks do not run.
    let log = TempDir::new("starthooklog");
    let scripts = TempDir::new("starthookbin");
    let host_hook = scripts.join("hook.sh");
    write_script(&host_hook, HOOK);
    let logdir = log.path().to_string_lossy().into_owned();
    let b = Bundle::new("starthook").args(&["sleep", "100"]).with(|c| {
        c["hooks"] = json!({
            "startContainer": [{ "path": "/bin/false" }],
            "poststart": [hook(&host_hook, "poststart", &logdir)]
        });
    });
    b.create().ok();
    let pid = b.pid();
    let out = b.start();
    out.failed_mentioning(&["startContainer"]);
    assert_eq!(b.status(), "stopped", "{out}");
    assert!(
        !log.join("poststart.json").exists(),
        "poststart ran after a failed startContainer hook"
    );
    b.delete().ok();
    assert_no_leftovers(&b, &b.id, Some(pid));
}

#[test]
fn start_container_hook_without_env_sees_the_process_environment() {
    // runc runs startContainer hooks from its init, whose environment is process.env; a
    // hook with `env` gets exactly that.
    let log = TempDir::new("hookenv");
    let b = Bundle::new("hookenv");
    write_script(
        &b.rootfs().join("env-hook.sh"),
        "#!/bin/sh\necho \"$1 FOO=$FOO BAR=$BAR\" >> /hooklog/env\n",
    );
    fs::create_dir(b.rootfs().join("hooklog")).expect("mkdir");
    let b = b
        .bind(log.path(), "/hooklog", false)
        .args(&["true"])
        .with(|c| {
            c["process"]["env"] = json!(["PATH=/bin", "FOO=from-process", "BAR=b"]);
            c["hooks"] = json!({
                "startContainer": [
                    { "path": "/env-hook.sh", "args": ["env-hook.sh", "inherit"] },
                    { "path": "/env-hook.sh", "args": ["env-hook.sh", "own"], "env": ["FOO=own"] }
                ]
            });
        });
    b.create().ok();
    b.start().ok();
    b.wait_status("stopped", WAIT);
    b.delete().ok();
    assert_eq!(
        fs::read_to_string(log.join("env")).unwrap_or_default(),
        "inherit FOO=from-process BAR=b\nown FOO=own BAR=\n"
    );
}

#[test]
fn failing_start_container_hook_of_a_non_root_process_is_reported() {
    // The init has switched to the process's user before `start` (as runc's): the failure
    // still reaches `start`, through a file opened while the init was root.
    let b = Bundle::new("starthookuser")
        .args(&["sleep", "100"])
        .with(|c| {
            c["process"]["user"] = json!({ "uid": 1000, "gid": 1000 });
            c["hooks"] = json!({ "startContainer": [{ "path": "/bin/false" }] });
        });
    b.create().ok();
    let pid = b.pid();
    b.start()
        .failed_mentioning(&["startContainer", "/bin/false"]);
    assert_eq!(b.status(), "stopped");
    b.delete().ok();
    assert_no_leftovers(&b, &b.id, Some(pid));
}
