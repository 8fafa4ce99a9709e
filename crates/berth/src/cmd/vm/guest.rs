//! `berth vm run --image`: the image's base disk behind a copy-on-write overlay, the kernel
//! command line that boots it with the agent as init, and the host side of configuration:
//! the script sent to the agent over vsock once it answers, then the workload started.

use super::image::{cached_disk, Source};
use agent::proto::{self, Request, Response};
use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use vmm::config::{DiskConfig, VmConfig, VsockConfig};

/// The guest CID when `--image` is given without `--vsock`.
const DEFAULT_CID: u32 = 3;

/// Makes `config` boot `image`: its cached base disk first (`/dev/vda`, copy-on-write),
/// `root=/dev/vda rw init=/.berth/agent` on the command line, and a vsock device for the
/// agent if there is none. Returns the host's vsock socket.
pub fn apply_image(
    config: &mut VmConfig,
    src: &Source,
    image: &str,
    state_root: &Path,
) -> Result<PathBuf> {
    let base = cached_disk(src, image)?;
    config.disks.insert(
        0,
        DiskConfig {
            path: base,
            read_only: false,
            cow: true,
        },
    );
    config.cmdline = format!(
        "{} root=/dev/vda rw init={}",
        config.cmdline.trim_end(),
        agent::AGENT_PATH
    );
    let vsock = config.vsock.get_or_insert(VsockConfig {
        cid: DEFAULT_CID,
        uds: None,
    });
    Ok(vsock
        .uds
        .clone()
        .unwrap_or_else(|| state_root.join(&config.name).join("vsock.sock")))
}

/// What the host does once the agent answers.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The VMM's vsock socket.
    pub uds: PathBuf,
    /// The configuration script.
    pub script: Option<String>,
    /// How long to wait for the agent.
    pub timeout: Duration,
}

fn never_answered(why: &str, timeout: Duration) -> anyhow::Error {
    anyhow::anyhow!(
        "the guest agent never answered on vsock port {} ({why}; waited up to {} s). On a \
         host whose /dev/kvm is a software virtualizer such as kvm_pvm, guest userspace \
         cannot run, so the agent never starts; on hardware KVM check the console for the \
         kernel's and the agent's messages",
        agent::PORT,
        timeout.as_secs()
    )
}

/// Connects to the agent through the VMM's hybrid vsock socket (`CONNECT port` → `OK …`),
/// retrying until `plan.timeout`; fails at once when the VM is gone.
fn connect(plan: &Plan) -> Result<UnixStream> {
    let deadline = Instant::now() + plan.timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(never_answered("timed out", plan.timeout));
        }
        let mut s = match UnixStream::connect(&plan.uds) {
            Ok(s) => s,
            Err(_) if !plan.uds.exists() => {
                return Err(never_answered(
                    "the VM stopped before its agent listened",
                    plan.timeout,
                ))
            }
            Err(_) => {
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
        };
        s.set_read_timeout(Some(left.min(Duration::from_secs(5))))
            .context("vsock socket timeout")?;
        if s.write_all(format!("CONNECT {}\n", agent::PORT).as_bytes())
            .is_err()
        {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        let mut line = String::new();
        let mut r = BufReader::new(s.try_clone().context("vsock socket")?);
        // The device answers `OK <port>` once the guest accepted; a refusal (no listener
        // yet) closes the stream.
        if r.read_line(&mut line).is_ok() && line.starts_with("OK ") {
            s.set_read_timeout(None).context("vsock socket timeout")?;
            return Ok(s);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Waits for the agent, runs the script (printing its output on stdout), starts the
/// workload. An error says what failed; a failing script is an error too.
pub fn configure(plan: &Plan) -> Result<()> {
    let mut s = connect(plan)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .context("vsock socket timeout")?;
    match proto::call(&mut s, &Request::Ping).context("agent: ping")? {
        Response::Pong { hostname, .. } => eprintln!("berth: guest agent answered ({hostname})"),
        other => bail!("agent: unexpected answer to ping: {other:?}"),
    }
    if let Some(script) = &plan.script {
        // The agent's own limit ends the script; the socket waits a little longer.
        let limit = Duration::from_secs(600);
        s.set_read_timeout(Some(limit + Duration::from_secs(30)))
            .context("vsock socket timeout")?;
        let req = Request::RunScript {
            script: script.clone(),
            timeout_secs: Some(limit.as_secs()),
        };
        match proto::call(&mut s, &req).context("agent: run the configuration script")? {
            Response::Script {
                exit_code,
                signal,
                output,
                truncated,
                timed_out,
            } => {
                print!("{output}");
                if truncated {
                    println!("[output truncated]");
                }
                let _ = std::io::stdout().flush();
                match (exit_code, signal) {
                    (Some(0), _) => eprintln!("berth: configuration script: exit status 0"),
                    _ if timed_out => {
                        bail!("configuration script: killed after {} s", limit.as_secs())
                    }
                    (Some(code), _) => bail!("configuration script: exit status {code}"),
                    (None, Some(sig)) => bail!("configuration script: killed by signal {sig}"),
                    (None, None) => bail!("configuration script: ended without a status"),
                }
            }
            Response::Error { message } => bail!("agent: {message}"),
            other => bail!("agent: unexpected answer to run_script: {other:?}"),
        }
    }
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .context("vsock socket timeout")?;
    match proto::call(&mut s, &Request::Start).context("agent: start the workload")? {
        Response::Started { pid } => eprintln!("berth: workload started in the guest (pid {pid})"),
        Response::Error { message } => bail!("agent: start the workload: {message}"),
        other => bail!("agent: unexpected answer to start: {other:?}"),
    }
    Ok(())
}

/// Reads the configuration script.
pub fn read_script(path: &Path) -> Result<String> {
    let bytes =
        std::fs::read(path).with_context(|| format!("--config-script {}", path.display()))?;
    String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("--config-script {}: not UTF-8 text", path.display()))
}

/// Runs [`configure`] in a process of its own (detached from this one by a double fork, so
/// it is nobody's zombie), while this process goes on to become the VM's monitor: the
/// monitor runs no berth code of ours beside the VMM.
pub fn configure_in_background(name: &str, plan: Plan) -> Result<()> {
    use sys::process::{clone_process, CloneResult};
    match clone_process(0, None).context("fork the configuration process")? {
        CloneResult::Parent(child) => {
            nix::sys::wait::waitpid(child, None).context("wait for the configuration fork")?;
            Ok(())
        }
        CloneResult::Child => {
            let code = match clone_process(0, None) {
                Ok(CloneResult::Child) => match configure(&plan) {
                    Ok(()) => 0,
                    Err(e) => {
                        eprintln!("berth: vm {name}: configuration failed: {e:#}");
                        1
                    }
                },
                Ok(CloneResult::Parent(_)) => 0,
                Err(e) => {
                    eprintln!("berth: vm {name}: fork the configuration process: {e}");
                    1
                }
            };
            std::process::exit(code)
        }
    }
}
