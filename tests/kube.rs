//! `berth kube play/down/generate` end to end: berth runs inside a network namespace of
//! the test's (tests/src/engine.rs `Eng`), on a busybox image built locally; every file
//! played is `kube down`-ed when the test ends.

use berth_tests::engine::Eng;
use berth_tests::net::http_get;
use berth_tests::*;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

/// An engine whose played files are taken down when the test ends.
struct Kube {
    e: Eng,
    files: std::cell::RefCell<Vec<PathBuf>>,
}

impl Kube {
    fn new(name: &str) -> Kube {
        Kube {
            e: Eng::new(&format!("kube-{name}")),
            files: Default::default(),
        }
    }

    fn write(&self, name: &str, yaml: &str) -> PathBuf {
        let p = self.e.s.dir.join(name);
        std::fs::write(&p, yaml).expect("write yaml");
        p
    }

    fn berth(&self, args: &[&str]) -> Output {
        self.e.berth(args)
    }

    /// `kube play FILE` (must succeed); its output.
    #[track_caller]
    fn play(&self, name: &str, yaml: &str) -> Output {
        let p = self.write(name, yaml);
        self.files.borrow_mut().push(p.clone());
        let out = self.berth(&["kube", "play", &p.to_string_lossy()]);
        out.ok();
        out
    }

    fn down(&self, name: &str) -> Output {
        let p = self.e.s.dir.join(name);
        self.berth(&["kube", "down", "--force", &p.to_string_lossy()])
    }

    /// Polls the container's log until it holds `needle`.
    #[track_caller]
    fn log_until(&self, c: &str, needle: &str) -> String {
        let mut last = String::new();
        let got = poll(Duration::from_secs(20), || {
            let o = self.berth(&["logs", c]);
            last = format!("{}{}", o.stdout, o.stderr);
            last.contains(needle).then(|| last.clone())
        });
        got.unwrap_or_else(|| panic!("the log of {c} never showed {needle:?}:\n{last}"))
    }

    fn state(&self, c: &str) -> String {
        self.e.inspect(c)["State"]["Status"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

impl Drop for Kube {
    fn drop(&mut self) {
        for f in self.files.borrow().iter() {
            let _ = self
                .e
                .berth(&["kube", "down", "--force", &f.to_string_lossy()]);
        }
    }
}

#[test]
fn pod_of_two_containers_talks_over_localhost() {
    let k = Kube::new("localhost");
    let out = k.play(
        "pod.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - name: srv
    image: busybox
    command: [httpd, -f, -p, "8000", -h, /etc]
  - name: cli
    image: busybox
    command: [sh, -c]
    args:
    - "for i in $(seq 100); do wget -qO- http://127.0.0.1:8000/hostname && break; sleep 0.1; done; echo got-it; sleep 1000"
"#,
    );
    assert!(
        out.stdout.starts_with("Pod:\n") && out.stdout.contains("Containers:\n"),
        "{out}"
    );
    // The server's /etc/hostname is the pod's (shared UTS), reached over the pod's localhost.
    let log = k.log_until("web-cli", "got-it");
    assert!(log.lines().any(|l| l.trim() == "web"), "{log}");
    assert_eq!(k.state("web-srv"), "running");
}

#[test]
fn configmap_and_secret_as_env_and_files() {
    let k = Kube::new("config");
    k.play(
        "cfg.yaml",
        r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data:
  GREETING: hello
  app.conf: "x=1"
---
apiVersion: v1
kind: Secret
metadata: {name: sec}
data: {PASSWORD: czNjcjN0}
---
apiVersion: v1
kind: Pod
metadata: {name: conf}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: busybox
    command: [sh, -c]
    args:
    - "echo G=$G P=$P CM=$CM_GREETING; echo file=$(cat /etc/cfg/app.conf); echo secret=$(cat /etc/sec/PASSWORD); touch /etc/cfg/new 2>/dev/null || echo ro-ok; echo done"
    env:
    - name: G
      valueFrom: {configMapKeyRef: {name: cfg, key: GREETING}}
    - name: P
      valueFrom: {secretKeyRef: {name: sec, key: PASSWORD}}
    envFrom:
    - {configMapRef: {name: cfg}, prefix: CM_}
    volumeMounts:
    - {name: c, mountPath: /etc/cfg}
    - {name: s, mountPath: /etc/sec}
  volumes:
  - {name: c, configMap: {name: cfg}}
  - {name: s, secret: {secretName: sec}}
"#,
    );
    let log = k.log_until("conf-main", "done");
    for want in [
        "G=hello P=s3cr3t CM=hello",
        "file=x=1",
        "secret=s3cr3t",
        "ro-ok",
    ] {
        assert!(log.contains(want), "{want:?} not in:\n{log}");
    }
}

#[test]
fn init_containers_run_in_order_before_the_others() {
    let k = Kube::new("init");
    k.play(
        "init.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: ord}
spec:
  initContainers:
  - name: one
    image: busybox
    command: [sh, -c, "sleep 0.3; echo one >> /work/order"]
    volumeMounts: [{name: w, mountPath: /work}]
  - name: two
    image: busybox
    command: [sh, -c, "echo two >> /work/order"]
    volumeMounts: [{name: w, mountPath: /work}]
  containers:
  - name: main
    image: busybox
    command: [sh, -c, "echo order=$(cat /work/order | tr '\n' ,); grep -c . /proc/mounts >/dev/null; sleep 1000"]
    volumeMounts: [{name: w, mountPath: /work}]
  volumes:
  - {name: w, emptyDir: {medium: Memory}}
"#,
    );
    let log = k.log_until("ord-main", "order=");
    assert!(log.contains("order=one,two,"), "{log}");
    assert_eq!(k.state("ord-one"), "exited");
    // A failing init container fails the pod: the main container never starts.
    let p = k.write(
        "bad-init.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: badinit}
spec:
  initContainers:
  - {name: fail, image: busybox, command: [sh, -c, "exit 3"]}
  containers:
  - {name: main, image: busybox, command: [sleep, "1000"]}
"#,
    );
    k.files.borrow_mut().push(p.clone());
    k.berth(&["kube", "play", &p.to_string_lossy()])
        .failed_mentioning(&["badinit-fail", "code 3"]);
    assert_eq!(k.state("badinit-main"), "created");
}

#[test]
fn deployment_replicas_behind_a_service_share_the_requests() {
    let k = Kube::new("svc");
    k.play(
        "deploy.yaml",
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: srv
        image: busybox
        command: [httpd, -f, -p, "8000", -h, /etc]
        ports: [{containerPort: 8000, name: http}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - {port: 80, targetPort: http, nodePort: 30080}
"#,
    );
    for i in 1..=3 {
        assert_eq!(k.state(&format!("web-{i}-srv")), "running");
    }
    let ns = k.e.s.netns.as_ref().expect("the test's namespace");
    let mut seen = BTreeSet::new();
    for _ in 0..30 {
        if let Some(body) = http_get(ns, "http://127.0.0.1:30080/hostname") {
            seen.insert(body.trim().to_string());
        }
        if seen.len() == 3 {
            break;
        }
    }
    let want: BTreeSet<String> = ["web-1", "web-2", "web-3"].map(String::from).into();
    assert_eq!(seen, want, "the replicas that answered through the Service");
    // down removes the Service with the pods: the port answers no more.
    k.down("deploy.yaml").ok();
    assert!(!ns.nft().contains("30080"), "{}", ns.nft());
    assert_eq!(http_get(ns, "http://127.0.0.1:30080/hostname"), None);
    assert_eq!(
        k.berth(&["ps", "-a", "-q"]).stdout.trim(),
        "",
        "containers left"
    );
}

#[test]
fn kube_down_leaves_nothing() {
    let k = Kube::new("down");
    let yaml = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {a: b}
---
apiVersion: v1
kind: Pod
metadata: {name: gone}
spec:
  containers:
  - name: a
    image: busybox
    command: [sleep, "1000"]
    ports: [{containerPort: 80, hostPort: 8088}]
    volumeMounts: [{name: c, mountPath: /c}, {name: m, mountPath: /m}, {name: d, mountPath: /d}]
  - {name: b, image: busybox, command: [sleep, "1000"]}
  volumes:
  - {name: c, configMap: {name: cfg}}
  - {name: m, emptyDir: {medium: Memory}}
  - {name: d, persistentVolumeClaim: {claimName: data}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
"#;
    // The first play makes the bridge and berth's table: count from there.
    k.play("down.yaml", yaml);
    k.down("down.yaml").ok();
    let ns = k.e.s.netns.as_ref().expect("the test's namespace");
    let links = ns.links();
    let table = ns.nft();
    let out = k.play("down.yaml", yaml);
    assert_eq!(k.state("gone-a"), "running");
    assert!(ns.nft().contains("8088"), "{}", ns.nft());
    let mem = k.e.s.dir.join("run/kube/gone/m");
    assert!(
        host_mounts()
            .iter()
            .any(|m| m.mount_point == mem.to_string_lossy()),
        "the memory emptyDir is a tmpfs"
    );
    let down = k.down("down.yaml");
    down.ok();
    let pod_id = out.stdout.lines().nth(1).expect("pod id").to_string();
    assert!(down.stdout.contains(&pod_id), "{down}");
    assert_eq!(
        k.berth(&["ps", "-a", "-q"]).stdout.trim(),
        "",
        "containers left"
    );
    let db = k.e.s.root().join("engine.db");
    for table in ["containers", "pods"] {
        let o = std::process::Command::new("sqlite3")
            .arg(&db)
            .arg(format!("SELECT count(*) FROM {table}"))
            .output()
            .expect("sqlite3");
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim(),
            "0",
            "rows of {table} left"
        );
    }
    assert_eq!(ns.links(), links, "links leaked");
    assert_eq!(ns.nft(), table, "nftables elements leaked");
    assert!(!k.e.s.root().join("kube/gone").exists(), "files left");
    assert!(!k.e.s.dir.join("run/kube/gone").exists(), "tmpfs dir left");
    assert!(
        !host_mounts()
            .iter()
            .any(|m| m.mount_point.contains("/kube/gone")),
        "mount left"
    );
    let vols = k.berth(&["volume", "ls", "-q"]);
    assert!(!vols.stdout.contains("data"), "claim volume left: {vols}");
}

#[test]
fn generate_then_play_round_trip() {
    let k = Kube::new("gen");
    k.play(
        "orig.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: gen, labels: {app: gen}}
spec:
  restartPolicy: OnFailure
  containers:
  - name: a
    image: busybox
    command: [sh, -c]
    args: ["echo v=$V wd=$(pwd); sleep 1000"]
    workingDir: /tmp
    env: [{name: V, value: "x y"}]
    resources: {limits: {memory: 64Mi}}
  - {name: b, image: busybox, command: [sleep, "1000"]}
"#,
    );
    k.log_until("gen-a", "v=x y wd=/tmp");
    let g = k.berth(&["kube", "generate", "gen"]);
    g.ok();
    // A valid Kubernetes object (k8s-openapi checks apiVersion, kind and every field's type).
    let pod: k8s_openapi::api::core::v1::Pod =
        serde_yaml::from_str(&g.stdout).unwrap_or_else(|e| panic!("{e}:\n{}", g.stdout));
    assert_eq!(pod.metadata.name.as_deref(), Some("gen"));
    let spec = pod.spec.expect("spec");
    assert_eq!(spec.restart_policy.as_deref(), Some("OnFailure"));
    let names: Vec<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    k.down("orig.yaml").ok();
    k.play("gen.yaml", &g.stdout);
    let log = k.log_until("gen-a", "v=x y wd=/tmp");
    assert!(log.contains("v=x y wd=/tmp"), "{log}");
    assert_eq!(k.state("gen-b"), "running");
    // A fixed point: the played copy generates the same YAML (limits, env, policy…).
    let again = k.berth(&["kube", "generate", "gen"]);
    again.ok();
    assert_eq!(again.stdout, g.stdout);
    assert!(
        g.stdout.contains("memory: '67108864'") || g.stdout.contains("memory: \"67108864\""),
        "{}",
        g.stdout
    );
}

#[test]
fn bad_yaml_and_refusals() {
    let k = Kube::new("bad");
    let play = |name: &str, yaml: &str| {
        let p = k.write(name, yaml);
        k.berth(&["kube", "play", &p.to_string_lossy()])
    };
    play(
        "syntax.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\nkind: [Pod\n",
    )
    .failed_mentioning(&["syntax.yaml", "document 2", "invalid YAML"]);
    play(
        "schema.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: a\n    image: busybox\n    ports: [{containerPort: eighty}]\n",
    )
    .failed_mentioning(&["document 1", "Pod \"p\"", "spec.containers[0].ports[0].containerPort"]);
    play(
        "priv.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: a, image: busybox, securityContext: {privileged: true}}\n",
    )
    .failed_mentioning(&["privileged", "--allow-privileged"]);
    // Unsupported fields and kinds are warnings, and the rest is carried out.
    let p = k.write(
        "warn.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: warn}\nspec:\n  nodeSelector: {disk: ssd}\n  containers:\n  - {name: a, image: busybox, command: [sleep, \"1000\"], stdinOnce: true}\n---\napiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\n",
    );
    k.files.borrow_mut().push(p.clone());
    let out = k.berth(&["kube", "play", &p.to_string_lossy()]);
    out.ok();
    for w in [
        "spec.nodeSelector",
        "spec.containers[].stdinOnce",
        "kind Job",
    ] {
        assert!(out.stderr.contains(w), "no warning about {w}: {out}");
    }
    assert_eq!(k.state("warn-a"), "running");
    // The pod exists: a second play is refused, --replace replaces it.
    k.berth(&["kube", "play", &p.to_string_lossy()])
        .failed_mentioning(&["warn", "already exists"]);
    let before = k.e.inspect("warn-a")["Id"].clone();
    k.berth(&["kube", "play", "--replace", &p.to_string_lossy()])
        .ok();
    assert_ne!(k.e.inspect("warn-a")["Id"], before);
}

#[test]
fn liveness_probe_restarts_the_container() {
    let k = Kube::new("probe");
    k.play(
        "probe.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: live}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: a
    image: busybox
    command: [sh, -c, "touch /tmp/ok; sleep 1000"]
    livenessProbe:
      exec: {command: [test, -f, /tmp/ok]}
      periodSeconds: 1
      failureThreshold: 1
"#,
    );
    let pid0 =
        k.e.until("live-a", Duration::from_secs(10), "running", |v| {
            v["State"]["Status"] == "running"
        })["State"]["Pid"]
            .clone();
    k.berth(&["exec", "live-a", "rm", "/tmp/ok"]).ok();
    let v =
        k.e.until("live-a", Duration::from_secs(20), "a restart", |v| {
            v["RestartCount"].as_u64().unwrap_or(0) >= 1 && v["State"]["Status"] == "running"
        });
    assert_ne!(v["State"]["Pid"], pid0, "a new process");
}

/// The members start together once the infra runs: all of them run when play returns. One
/// that cannot start fails play with its name and the runtime's reason; the others still
/// run, it stays created (never half started), and `pod start` names it again.
#[test]
fn members_start_together_and_a_failing_one_is_named() {
    let k = Kube::new("together");
    k.play(
        "four.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: four}
spec:
  containers:
  - {name: a, image: busybox, command: [sleep, "1000"]}
  - {name: b, image: busybox, command: [sleep, "1000"]}
  - {name: c, image: busybox, command: [sleep, "1000"]}
  - {name: d, image: busybox, command: [sleep, "1000"]}
"#,
    );
    for c in ["four-a", "four-b", "four-c", "four-d"] {
        assert_eq!(k.state(c), "running", "{c}");
    }
    let p = k.write(
        "badstart.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: badstart}
spec:
  containers:
  - {name: ok1, image: busybox, command: [sleep, "1000"]}
  - {name: bad, image: busybox, command: [/no/such/program]}
  - {name: ok2, image: busybox, command: [sleep, "1000"]}
"#,
    );
    k.files.borrow_mut().push(p.clone());
    let out = k.berth(&["kube", "play", &p.to_string_lossy()]);
    out.failed_mentioning(&["badstart-bad", "/no/such/program"]);
    assert!(
        !out.stderr.contains("badstart-ok"),
        "only the failing container is named:\n{out}"
    );
    assert_eq!(k.state("badstart-ok1"), "running");
    assert_eq!(k.state("badstart-ok2"), "running");
    assert_eq!(k.state("badstart-bad"), "created");
    k.berth(&["pod", "start", "badstart"])
        .failed_mentioning(&["badstart-bad", "/no/such/program"]);
    assert_eq!(k.state("badstart-bad"), "created");
    assert_eq!(k.state("badstart-ok1"), "running");
    k.down("badstart.yaml").ok();
    let ps = k.berth(&["ps", "-a", "--format", "{{.Names}}"]);
    assert!(!ps.stdout.contains("badstart"), "{ps}");
}
