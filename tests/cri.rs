//! The Kubernetes CRI, as kubelet drives it, against containerd's CRI plugin with a runtime
//! handler `berth` (`runtime_type = "io.containerd.runc.v2"`, option `BinaryName` =
//! berth-runtime): RunPodSandbox with CNI networking (Debian's containernetworking-plugins,
//! a bridge inside a network namespace this test made: containerd runs under
//! `unshare --net`), CreateContainer, StartContainer, ContainerStatus, ExecSync, the
//! container log file, ContainerStats, UpdateContainerResources, StopContainer,
//! RemoveContainer, StopPodSandbox, RemovePodSandbox. Debian has no crictl: the client is
//! the `k8s-cri` crate's generated types with tonic, over containerd's socket. The sandbox
//! ("pause") image is a busybox image built here and imported into containerd.
//!
//! berth-runtime, not runc, ran both the sandbox and the container: its state directory
//! (the handler's `Root`) holds them and its log lines are in each shim's log.json.

use berth_tests::containerd::*;
use berth_tests::*;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;
use std::path::Path;
use std::time::Duration;
use tonic::transport::{Channel, Endpoint, Uri};

const HANDLER: &str = "berth";
const PAUSE: &str = "localhost/berth-pause:test";
const APP: &str = "localhost/berth-box:test";
const SUBNET: &str = "10.88.77.0/24";

/// containerd's config for the CRI: runc stays the default, and the `berth` handler (the
/// snippet README.md shows) is what a pod asks for (`runtime_handler`, a RuntimeClass's
/// `handler`); CNI from the test's directory, the locally built sandbox image, loopback
/// streaming.
fn cri_config(d: &Path) -> String {
    let d = d.display();
    let rt = runtime_bin().display().to_string();
    format!(
        r#"[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE}"
  netns_mounts_under_state_dir = true
  # This machine's bounding set lacks CAP_SYS_RESOURCE, so no runtime (runc neither) may
  # lower a process's oom_score_adj below containerd's; kubelet's -998 for the sandbox is
  # clamped to it instead.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{d}/cni"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.berth]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.berth.options]
      BinaryName = "{rt}"
      Root = "{d}/runc"
"#
    )
}

/// A bridge network with host-local addresses, all inside containerd's network namespace;
/// no masquerading (nothing leaves it).
fn cni_config(d: &Path) {
    let dir = d.join("cni");
    std::fs::create_dir_all(&dir).expect("mkdir cni");
    let conf = serde_json::json!({
        "cniVersion": "0.4.0",
        "name": "berth-cri-test",
        "plugins": [
            {
                "type": "bridge", "bridge": "berthcri0", "isGateway": true, "ipMasq": false,
                "ipam": {
                    "type": "host-local", "subnet": SUBNET,
                    "dataDir": d.join("cni-ipam"),
                    "routes": [{ "dst": "0.0.0.0/0" }]
                }
            }
        ]
    });
    std::fs::write(dir.join("10-berth.conflist"), conf.to_string()).expect("write conflist");
}

async fn channel(sock: &Path) -> Channel {
    let sock = sock.to_path_buf();
    Endpoint::try_from("http://[::]:50051")
        .expect("endpoint")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let sock = sock.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                    tokio::net::UnixStream::connect(sock).await?,
                ))
            }
        }))
        .await
        .expect("connect to containerd's CRI")
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

#[test]
fn cri_pod_lifecycle_on_berth_runtime() {
    need_all(&["unshare", "containerd", "/usr/lib/cni/bridge"]);
    let pre = TempDir::new("cri-cfg");
    let mut c = Containerd::start_with("cri", &cri_config(pre.path()), &["unshare", "--net"]);
    // The CRI's directories are given in the config written before start: keep them in
    // the config's directory (`pre`), which lives as long as containerd.
    cni_config(pre.path());
    // Images in the CRI's containerd namespace (which the drop guard then cleans).
    c.ns = "k8s.io".into();
    c.import_busybox_as(PAUSE, &["sleep", "1000000"]);
    c.import_busybox_as(APP, &["sh"]);
    let logs = pre.join("pods");
    std::fs::create_dir_all(&logs).expect("mkdir pod logs");
    block_on(pod_lifecycle(&c, pre.path(), &logs));
}

/// Fails the test, naming what to install, when one of `progs` is missing.
fn need_all(progs: &[&str]) {
    for p in progs {
        if p.starts_with('/') {
            assert!(
                Path::new(p).exists(),
                "{p} is missing: run scripts/install-deps.sh (containernetworking-plugins)"
            );
        } else {
            berth_tests::oci::need(p);
        }
    }
}

async fn pod_lifecycle(c: &Containerd, d: &Path, logs: &Path) {
    let ch = channel(&c.socket()).await;
    let mut rt = RuntimeServiceClient::new(ch.clone());
    let mut img = ImageServiceClient::new(ch);
    let v = rt
        .version(VersionRequest::default())
        .await
        .expect("Version")
        .into_inner();
    assert_eq!(v.runtime_name, "containerd", "{v:?}");
    let images = img
        .list_images(ListImagesRequest::default())
        .await
        .expect("ListImages")
        .into_inner();
    let tags: Vec<String> = images
        .images
        .iter()
        .flat_map(|i| i.repo_tags.clone())
        .collect();
    assert!(
        tags.iter().any(|t| t == PAUSE) && tags.iter().any(|t| t == APP),
        "{tags:?}"
    );

    let uid = unique_id("pod");
    let sandbox_config = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: "berth-pod".into(),
            uid: uid.clone(),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: "berth-pod".into(),
        log_directory: logs.display().to_string(),
        linux: Some(LinuxPodSandboxConfig::default()),
        ..Default::default()
    };
    let pod = rt
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(sandbox_config.clone()),
            runtime_handler: HANDLER.into(),
        })
        .await
        .expect("RunPodSandbox")
        .into_inner()
        .pod_sandbox_id;
    let st = rt
        .pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: pod.clone(),
            verbose: false,
        })
        .await
        .expect("PodSandboxStatus")
        .into_inner()
        .status
        .expect("sandbox status");
    let ip = st.network.map(|n| n.ip).unwrap_or_default();
    assert!(
        ip.starts_with("10.88.77."),
        "pod IP {ip:?} not from {SUBNET}"
    );
    assert_eq!(st.state, PodSandboxState::SandboxReady as i32);

    let container_config = ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: "app".into(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: APP.into(),
            ..Default::default()
        }),
        command: vec!["sh".into(), "-c".into()],
        args: vec!["echo started; while :; do sleep 1; done".into()],
        log_path: "app.log".into(),
        linux: Some(LinuxContainerConfig {
            resources: Some(LinuxContainerResources {
                memory_limit_in_bytes: 64 << 20,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let cid = rt
        .create_container(CreateContainerRequest {
            pod_sandbox_id: pod.clone(),
            config: Some(container_config),
            sandbox_config: Some(sandbox_config),
        })
        .await
        .expect("CreateContainer")
        .into_inner()
        .container_id;
    rt.start_container(StartContainerRequest {
        container_id: cid.clone(),
    })
    .await
    .expect("StartContainer");
    let status = |rt: &mut RuntimeServiceClient<Channel>| {
        let mut rt = rt.clone();
        let cid = cid.clone();
        async move {
            rt.container_status(ContainerStatusRequest {
                container_id: cid,
                verbose: false,
            })
            .await
            .expect("ContainerStatus")
            .into_inner()
            .status
            .expect("container status")
        }
    };
    assert_eq!(
        status(&mut rt).await.state,
        ContainerState::ContainerRunning as i32
    );

    // berth-runtime ran the sandbox and the container: the handler's Root is its state dir.
    let state_root = d.join("runc/k8s.io");
    for id in [&pod, &cid] {
        let mut cmd = std::process::Command::new(runtime_bin());
        cmd.arg("--root").arg(&state_root).args(["state", id]);
        let out = capture(cmd, Capture::Pipes, CTR_TIMEOUT);
        out.ok();
        assert!(out.stdout.contains("\"running\""), "{out}");
        let log_json = c
            .dir
            .join("state/io.containerd.runtime.v2.task/k8s.io")
            .join(id)
            .join("log.json");
        assert!(
            ran_by_berth(&log_json, "Create"),
            "{} not by berth-runtime",
            log_json.display()
        );
    }

    // ExecSync: output and exit code; it runs in the pod's network namespace.
    let ex = rt
        .exec_sync(ExecSyncRequest {
            container_id: cid.clone(),
            cmd: vec!["sh".into(), "-c".into(), "echo exec-out; hostname; ip -4 addr show eth0 2>/dev/null | grep -o '10\\.88\\.77\\.[0-9]*' || cat /proc/net/fib_trie | grep -o '10\\.88\\.77\\.[0-9]*' | head -1".into()],
            timeout: 10,
        })
        .await
        .expect("ExecSync")
        .into_inner();
    let out = String::from_utf8_lossy(&ex.stdout).into_owned();
    assert_eq!(
        ex.exit_code,
        0,
        "{out} {}",
        String::from_utf8_lossy(&ex.stderr)
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first().copied(), Some("exec-out"), "{out}");
    assert_eq!(lines.get(1).copied(), Some("berth-pod"), "{out}");
    assert!(out.contains(&ip), "pod IP {ip} not seen inside:\n{out}");
    let ex = rt
        .exec_sync(ExecSyncRequest {
            container_id: cid.clone(),
            cmd: vec!["sh".into(), "-c".into(), "exit 4".into()],
            timeout: 10,
        })
        .await
        .expect("ExecSync")
        .into_inner();
    assert_eq!(ex.exit_code, 4);

    // The container log file, in the CRI format ("<time> stdout F <line>").
    let log = logs.join("app.log");
    let logged = poll(Duration::from_secs(10), || {
        std::fs::read_to_string(&log)
            .ok()
            .filter(|t| t.lines().any(|l| l.ends_with(" stdout F started")))
    });
    assert!(logged.is_some(), "no 'started' line in {}", log.display());

    // ContainerStats from the cgroup berth-runtime made.
    let stats = rt
        .container_stats(ContainerStatsRequest {
            container_id: cid.clone(),
        })
        .await
        .expect("ContainerStats")
        .into_inner()
        .stats
        .expect("stats");
    let ws = stats
        .memory
        .and_then(|m| m.working_set_bytes)
        .map(|v| v.value)
        .unwrap_or(0);
    assert!(ws > 0, "working set {ws}");
    assert!(stats
        .cpu
        .and_then(|c| c.usage_core_nano_seconds)
        .is_some_and(|v| v.value > 0));

    // UpdateContainerResources: the shim runs `berth-runtime update -r -`.
    let limit = |rt: &mut RuntimeServiceClient<Channel>| {
        let mut rt = rt.clone();
        let cid = cid.clone();
        async move {
            let ex = rt
                .exec_sync(ExecSyncRequest {
                    container_id: cid,
                    cmd: vec![
                        "cat".into(),
                        "/sys/fs/cgroup/memory/memory.limit_in_bytes".into(),
                    ],
                    timeout: 10,
                })
                .await
                .expect("ExecSync")
                .into_inner();
            String::from_utf8_lossy(&ex.stdout).trim().to_string()
        }
    };
    assert_eq!(limit(&mut rt).await, (64u64 << 20).to_string());
    rt.update_container_resources(UpdateContainerResourcesRequest {
        container_id: cid.clone(),
        linux: Some(LinuxContainerResources {
            memory_limit_in_bytes: 32 << 20,
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .expect("UpdateContainerResources");
    assert_eq!(limit(&mut rt).await, (32u64 << 20).to_string());

    // Stop, remove: the container, then the sandbox; berth-runtime's state goes with them.
    rt.stop_container(StopContainerRequest {
        container_id: cid.clone(),
        timeout: 2,
    })
    .await
    .expect("StopContainer");
    assert_eq!(
        status(&mut rt).await.state,
        ContainerState::ContainerExited as i32
    );
    rt.remove_container(RemoveContainerRequest {
        container_id: cid.clone(),
    })
    .await
    .expect("RemoveContainer");
    rt.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: pod.clone(),
    })
    .await
    .expect("StopPodSandbox");
    rt.remove_pod_sandbox(RemovePodSandboxRequest {
        pod_sandbox_id: pod.clone(),
    })
    .await
    .expect("RemovePodSandbox");
    for id in [&pod, &cid] {
        assert!(
            !state_root.join(id).exists(),
            "berth-runtime state of {id} left"
        );
    }
    let left = rt
        .list_pod_sandbox(ListPodSandboxRequest::default())
        .await
        .expect("ListPodSandbox")
        .into_inner()
        .items;
    assert!(left.is_empty(), "{left:?}");
}
