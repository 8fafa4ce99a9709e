//! `berth vm run`: boot a kernel in a new microVM.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use vmm::config::{BootProtocol, DiskConfig, NetConfig, VmConfig, VsockConfig, DEFAULT_CMDLINE};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Number of vCPUs.
    #[arg(long, default_value_t = 1)]
    cpus: u8,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 128)]
    memory: u64,
    /// Kernel: a PVH ELF, a vmlinux or a bzImage.
    #[arg(long)]
    kernel: PathBuf,
    /// Initial ramdisk (uncompressed cpio is fastest).
    #[arg(long)]
    initrd: Option<PathBuf>,
    /// A raw disk image, as a virtio-mmio block device; `:ro` makes it read-only; `:cow`
    /// keeps it unchanged behind a copy-on-write overlay deleted with the VM.
    #[arg(long = "disk", value_name = "IMG[:ro|:cow]")]
    disks: Vec<String>,
    /// A host tap device (in this network namespace) as a virtio-mmio network device.
    #[arg(long = "net", value_name = "TAP")]
    nets: Vec<String>,
    /// A virtio-vsock device: the guest's CID, and the host's unix socket (default
    /// `vsock.sock` in the VM's state directory). Guest connections to port P reach
    /// `PATH_P`; a host program writes `CONNECT P` to PATH to reach guest port P.
    #[arg(long, value_name = "CID[:PATH]")]
    vsock: Option<String>,
    /// A virtio-rng device (entropy from the host's getrandom).
    #[arg(long)]
    rng: bool,
    /// Enter an ELF kernel with a PVH note through the 64-bit Linux boot protocol instead.
    #[arg(long)]
    linux_boot: bool,
    /// Kernel command line.
    #[arg(long, default_value = DEFAULT_CMDLINE)]
    cmdline: String,
    /// The VM's name (default: generated).
    #[arg(long)]
    name: Option<String>,
    /// Run in the background; the console goes to a log (`berth vm console NAME`).
    #[arg(short = 'd', long = "detach")]
    detach: bool,
    #[arg(long, hide = true)]
    detached_child: bool,
    /// Print the monitor's peak RSS and resident guest memory on stderr at exit (benchmarks).
    #[arg(long, hide = true)]
    stats: bool,
    /// Boot an image of the store: its disk (made once by `berth vm image`, cached) as
    /// /dev/vda behind a copy-on-write overlay deleted with the VM, the agent as init.
    #[arg(long, value_name = "IMAGE")]
    image: Option<String>,
    /// With --image: a shell script the guest agent runs (over vsock) before it starts the
    /// image's entrypoint; its output and status are printed.
    #[arg(long, value_name = "FILE", requires = "image")]
    config_script: Option<PathBuf>,
    /// With --image: how long to wait for the guest agent, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 120, requires = "image")]
    agent_timeout: u64,
    #[command(flatten)]
    image_source: super::image::Source,
}

fn disk(spec: &str) -> DiskConfig {
    if let Some(path) = spec.strip_suffix(":cow") {
        return DiskConfig {
            path: PathBuf::from(path),
            read_only: false,
            cow: true,
        };
    }
    match spec.strip_suffix(":ro") {
        Some(path) => DiskConfig {
            path: PathBuf::from(path),
            read_only: true,
            cow: false,
        },
        None => DiskConfig {
            path: PathBuf::from(spec.strip_suffix(":rw").unwrap_or(spec)),
            read_only: false,
            cow: false,
        },
    }
}

fn vsock(spec: &str) -> Result<VsockConfig> {
    let (cid, uds) = match spec.split_once(':') {
        Some((c, p)) => (c, Some(PathBuf::from(p))),
        None => (spec, None),
    };
    let cid = cid
        .parse()
        .map_err(|_| anyhow::anyhow!("--vsock {spec}: the CID is not a number"))?;
    Ok(VsockConfig { cid, uds })
}

pub fn run(root: &Path, a: Args) -> Result<()> {
    let name = a.name.clone().unwrap_or_else(super::default_name);
    let mut config = VmConfig {
        name: name.clone(),
        cpus: a.cpus,
        memory_mib: a.memory,
        kernel: a.kernel.clone(),
        initrd: a.initrd.clone(),
        cmdline: a.cmdline.clone(),
        disks: a.disks.iter().map(|d| disk(d)).collect(),
        nets: a
            .nets
            .iter()
            .map(|t| NetConfig { tap: t.clone() })
            .collect(),
        rng: a.rng,
        vsock: a.vsock.as_deref().map(vsock).transpose()?,
        boot_protocol: if a.linux_boot {
            BootProtocol::Linux
        } else {
            BootProtocol::Auto
        },
    };
    // --image: the disk, command line and vsock device, and the agent's configuration.
    let plan = match &a.image {
        Some(image) => {
            let uds = super::guest::apply_image(&mut config, &a.image_source, image, root)?;
            let script = a
                .config_script
                .as_deref()
                .map(super::guest::read_script)
                .transpose()?;
            Some(super::guest::Plan {
                uds,
                script,
                timeout: std::time::Duration::from_secs(a.agent_timeout),
            })
        }
        None => None,
    };
    // Before the detached monitor exists (the common mistakes are reported without a
    // second process) or the cgroup is made.
    config.validate()?;
    if a.detach {
        let extra: Vec<String> = match a.name {
            Some(_) => Vec::new(),
            None => vec!["--name".into(), name.clone()],
        };
        super::detach(&name, &extra)?;
        // The VM runs on; this process configures it and reports.
        if let Some(plan) = &plan {
            super::guest::configure(plan).map_err(|e| {
                anyhow::anyhow!("vm {name} runs, but its configuration failed: {e:#}")
            })?;
        }
        return Ok(());
    }
    // In the foreground, the configuration runs beside the monitor, in a process of its
    // own (a detached monitor leaves it to the command that started it).
    if let (Some(plan), false) = (plan, a.detached_child) {
        super::guest::configure_in_background(&name, plan)?;
    }
    let json = serde_json::to_string(&config).context("encode the VM configuration")?;
    let mut args: Vec<std::ffi::OsString> = vec!["--config".into(), json.into()];
    if a.stats {
        args.push("--stats".into());
    }
    let log = a
        .detached_child
        .then(|| root.join(&name).join("console.log"));
    super::exec_monitor(root, "run", &args, log)
}
