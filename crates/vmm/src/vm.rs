//! One VM: the KVM VM and its memory, interrupt controllers, devices and vCPU threads.

use crate::boot::{self, BootError};
use crate::config::VmConfig;
use crate::devices::serial::{self, persist::SerialSnapshot, SerialDevice, SerialOut};
use crate::devices::virtio::block::{persist::BlockSnapshot, Block, BlockError};
use crate::devices::virtio::mmio::{MmioSnapshot, MmioTransport, QUEUE_NOTIFY};
use crate::devices::virtio::net::{device::mac_for, persist::NetSnapshot, Net, NetError};
use crate::devices::virtio::rng::{persist::RngSnapshot, Rng};
use crate::devices::virtio::vsock::{persist::VsockSnapshot, Vsock, VsockError};
use crate::devices::virtio::IrqTrigger;
use crate::devices::{debug_exit, i8042, Bus, BusError, EventFdTrigger};
use crate::memory::{self, FIRST_DEVICE_GSI, MMIO_DEVICE_SIZE};
use crate::vcpu::state::VcpuState;
use crate::vcpu::{regs, VcpuContext, VcpuError, VcpuHandle};
use kvm_bindings::{
    kvm_clock_data, kvm_irqchip, kvm_pit_config, kvm_pit_state2, kvm_userspace_memory_region,
    KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE, KVM_MAX_CPUID_ENTRIES,
    KVM_PIT_SPEAKER_DUMMY,
};
use kvm_ioctls::{IoEventAddress, Kvm, NoDatamatch, VmFd};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::{Arc, Mutex};
use vm_memory::{GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};
use vmm_sys_util::eventfd::EventFd;

pub use crate::vcpu::StopReason as ExitReason;

const TSS_ADDR: usize = 0xfffb_d000;

/// Creating or driving a VM failed.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// cannot open /dev/kvm: {0} (is KVM available and are you root?)
    #[error("cannot open /dev/kvm: {0} (is KVM available and are you root?)")]
    Kvm(kvm_ioctls::Error),
    /// {what}: {source}
    #[error("{what}: {source}")]
    Ioctl {
        what: &'static str,
        source: kvm_ioctls::Error,
    },
    /// {0}
    #[error(transparent)]
    Memory(#[from] memory::MemoryError),
    /// {0}
    #[error(transparent)]
    Boot(#[from] BootError),
    /// {0}
    #[error(transparent)]
    Disk(#[from] BlockError),
    /// {0}
    #[error(transparent)]
    Net(#[from] NetError),
    /// {0}
    #[error(transparent)]
    Vsock(#[from] VsockError),
    /// {0}
    #[error(transparent)]
    Bus(#[from] BusError),
    /// {0}
    #[error(transparent)]
    Vcpu(#[from] VcpuError),
    /// {0}
    #[error(transparent)]
    Regs(#[from] regs::RegsError),
    /// cannot create an eventfd: {0}
    #[error("cannot create an eventfd: {0}")]
    EventFd(std::io::Error),
    /// snapshot does not match the VM: {0}
    #[error("snapshot does not match the VM: {0}")]
    Mismatch(String),
}

/// Puts a virtio device on the MMIO bus at `addr`: its queue-notify eventfds become
/// ioeventfds of the QueueNotify register (matched on the queue index when it has several
/// queues), and its transport is built, with `saved` queue state restored.
#[allow(clippy::too_many_arguments)]
fn attach_virtio(
    fd: &VmFd,
    mmio: &mut Bus,
    mem: &GuestMemoryMmap,
    addr: u64,
    dev: Arc<Mutex<dyn crate::devices::virtio::VirtioDevice>>,
    irq: Arc<IrqTrigger>,
    evts: Vec<EventFd>,
    saved: Option<&MmioSnapshot>,
    what: &str,
) -> Result<Arc<Mutex<MmioTransport>>, VmError> {
    let notify = IoEventAddress::Mmio(addr + QUEUE_NOTIFY);
    if let [only] = evts.as_slice() {
        fd.register_ioevent(only, &notify, NoDatamatch)
            .map_err(ioctl("KVM_IOEVENTFD"))?;
    } else {
        for (q, e) in evts.iter().enumerate() {
            fd.register_ioevent(e, &notify, q as u32)
                .map_err(ioctl("KVM_IOEVENTFD"))?;
        }
    }
    let mut transport = MmioTransport::new(dev, mem.clone(), irq, evts);
    if let Some(t) = saved {
        transport
            .restore(t)
            .map_err(|e| VmError::Mismatch(format!("{what} queues: {e:?}")))?;
    }
    let transport = Arc::new(Mutex::new(transport));
    mmio.insert(addr, MMIO_DEVICE_SIZE, transport.clone())?;
    Ok(transport)
}

fn ioctl(what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> VmError {
    move |source| VmError::Ioctl { what, source }
}

/// The interrupt controllers and clock of a VM, for snapshots.
#[derive(Clone, Serialize, Deserialize)]
pub struct VmState {
    pub pic_master: kvm_irqchip,
    pub pic_slave: kvm_irqchip,
    pub ioapic: kvm_irqchip,
    pub pit: kvm_pit_state2,
    pub clock: kvm_clock_data,
}

/// Device state carried into a restored VM.
pub struct DeviceState<'a> {
    pub serial: &'a SerialSnapshot,
    pub disks: &'a [(MmioSnapshot, BlockSnapshot)],
    pub nets: &'a [(MmioSnapshot, NetSnapshot)],
    pub rng: Option<&'a (MmioSnapshot, RngSnapshot)>,
    pub vsock: Option<&'a (MmioSnapshot, VsockSnapshot)>,
}

/// A virtio-mmio block device with its transport.
pub struct Disk {
    pub block: Arc<Mutex<Block>>,
    pub transport: Arc<Mutex<MmioTransport>>,
}

/// A virtio-mmio net device with its transport.
pub struct NetDev {
    pub net: Arc<Mutex<Net>>,
    pub transport: Arc<Mutex<MmioTransport>>,
}

/// The virtio-rng device with its transport.
pub struct RngDev {
    pub rng: Arc<Mutex<Rng>>,
    pub transport: Arc<Mutex<MmioTransport>>,
}

/// The virtio-vsock device with its transport.
pub struct VsockDev {
    pub vsock: Arc<Mutex<Vsock>>,
    pub transport: Arc<Mutex<MmioTransport>>,
}

/// A running (or paused) VM.
pub struct Vm {
    pub config: VmConfig,
    fd: VmFd,
    pub mem: GuestMemoryMmap,
    pub serial: Arc<Mutex<SerialDevice>>,
    pub disks: Vec<Disk>,
    pub nets: Vec<NetDev>,
    pub rng: Option<RngDev>,
    pub vsock: Option<VsockDev>,
    vcpus: Vec<VcpuHandle>,
    pub ctx: VcpuContext,
    paused: bool,
}

impl Vm {
    /// Creates a VM from `config`, boots its kernel and starts its vCPUs.
    /// `dir` is the VM's state directory (where its vsock socket goes by default).
    pub fn boot(config: VmConfig, console: SerialOut, dir: &Path) -> Result<Vm, VmError> {
        let mem = memory::create(config.memory_mib)?;
        let (kvm, mut vm) = Vm::shell(config, mem, console, None, dir)?;
        let extra: Vec<String> = (0..vm.config.device_count())
            .map(|i| {
                format!(
                    "virtio_mmio.device=4K@{:#x}:{}",
                    memory::mmio_device_addr(i),
                    FIRST_DEVICE_GSI + i as u32
                )
            })
            .collect();
        let entry = boot::load(&vm.config, &vm.mem, &extra.join(" "))?;
        let cpuid = kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(ioctl("KVM_GET_SUPPORTED_CPUID"))?;
        for id in 0..vm.config.cpus {
            let fd = vm
                .fd
                .create_vcpu(u64::from(id))
                .map_err(ioctl("KVM_CREATE_VCPU"))?;
            regs::setup_cpuid(&fd, &cpuid, id, vm.config.cpus)?;
            regs::setup_fpu(&fd)?;
            regs::setup_lint(&fd)?;
            if id == 0 {
                regs::setup_boot_vcpu(&fd, &vm.mem, entry)?;
            }
            vm.vcpus
                .push(VcpuHandle::spawn(id, fd, vm.ctx.clone(), false)?);
        }
        Ok(vm)
    }

    /// Recreates a VM from a snapshot's parts; it runs unless `paused`.
    #[allow(clippy::too_many_arguments)]
    pub fn restore(
        config: VmConfig,
        dir: &Path,
        mem: GuestMemoryMmap,
        console: SerialOut,
        state: &VmState,
        devices: DeviceState<'_>,
        vcpus: Vec<VcpuState>,
        paused: bool,
    ) -> Result<Vm, VmError> {
        if vcpus.len() != usize::from(config.cpus) {
            return Err(VmError::Mismatch(format!(
                "{} vcpu states for {} vcpus",
                vcpus.len(),
                config.cpus
            )));
        }
        let (kvm, mut vm) = Vm::shell(config, mem, console, Some(devices), dir)?;
        let mut pic = state.pic_master;
        pic.chip_id = KVM_IRQCHIP_PIC_MASTER;
        vm.fd.set_irqchip(&pic).map_err(ioctl("KVM_SET_IRQCHIP"))?;
        let mut pic = state.pic_slave;
        pic.chip_id = KVM_IRQCHIP_PIC_SLAVE;
        vm.fd.set_irqchip(&pic).map_err(ioctl("KVM_SET_IRQCHIP"))?;
        let mut ioapic = state.ioapic;
        ioapic.chip_id = KVM_IRQCHIP_IOAPIC;
        vm.fd
            .set_irqchip(&ioapic)
            .map_err(ioctl("KVM_SET_IRQCHIP"))?;
        vm.fd.set_pit2(&state.pit).map_err(ioctl("KVM_SET_PIT2"))?;
        let mut clock = state.clock;
        clock.flags = 0;
        vm.fd.set_clock(&clock).map_err(ioctl("KVM_SET_CLOCK"))?;
        let cpuid = kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(ioctl("KVM_GET_SUPPORTED_CPUID"))?;
        for (id, s) in (0..vm.config.cpus).zip(vcpus) {
            let fd = vm
                .fd
                .create_vcpu(u64::from(id))
                .map_err(ioctl("KVM_CREATE_VCPU"))?;
            regs::setup_cpuid(&fd, &cpuid, id, vm.config.cpus)?;
            let handle = VcpuHandle::spawn(id, fd, vm.ctx.clone(), true)?;
            handle.restore(Box::new(s))?;
            vm.vcpus.push(handle);
        }
        vm.paused = true;
        if !paused {
            vm.resume()?;
        }
        Ok(vm)
    }

    /// The VM without vCPUs: KVM VM, memory slots, interrupt controllers, devices.
    fn shell(
        config: VmConfig,
        mem: GuestMemoryMmap,
        console: SerialOut,
        devices: Option<DeviceState<'_>>,
        dir: &Path,
    ) -> Result<(Kvm, Vm), VmError> {
        let kvm = Kvm::new().map_err(VmError::Kvm)?;
        let fd = kvm.create_vm().map_err(ioctl("KVM_CREATE_VM"))?;
        fd.set_tss_address(TSS_ADDR)
            .map_err(ioctl("KVM_SET_TSS_ADDR"))?;
        for (slot, region) in mem.iter().enumerate() {
            let host = mem
                .get_host_address(region.start_addr())
                .map_err(|e| VmError::Mismatch(e.to_string()))?;
            let r = kvm_userspace_memory_region {
                slot: slot as u32,
                flags: 0,
                guest_phys_addr: region.start_addr().0,
                memory_size: region.len(),
                userspace_addr: host as u64,
            };
            // SAFETY: `host` is the start of a live mapping of `region.len()` bytes owned by
            // `mem`, which the Vm keeps for as long as the KVM VM (and its vCPUs) exist.
            unsafe { fd.set_user_memory_region(r) }.map_err(ioctl("KVM_SET_USER_MEMORY_REGION"))?;
        }
        fd.create_irq_chip().map_err(ioctl("KVM_CREATE_IRQCHIP"))?;
        let pit = kvm_pit_config {
            flags: KVM_PIT_SPEAKER_DUMMY,
            ..Default::default()
        };
        fd.create_pit2(pit).map_err(ioctl("KVM_CREATE_PIT2"))?;

        let evt = || EventFd::new(libc::EFD_NONBLOCK).map_err(VmError::EventFd);
        // Virtio slot `i`: its MMIO window and its interrupt (an irqfd on GSI FIRST + i).
        let slot = |i: usize| -> Result<(u64, Arc<IrqTrigger>), VmError> {
            let irq_evt = evt()?;
            fd.register_irqfd(&irq_evt, FIRST_DEVICE_GSI + i as u32)
                .map_err(ioctl("KVM_IRQFD"))?;
            Ok((
                memory::mmio_device_addr(i),
                Arc::new(IrqTrigger::new(irq_evt)),
            ))
        };
        let serial_evt = evt()?;
        fd.register_irqfd(&serial_evt, serial::IRQ)
            .map_err(ioctl("KVM_IRQFD"))?;
        let trigger = EventFdTrigger(serial_evt);
        let serial = match devices.as_ref() {
            Some(d) => {
                SerialDevice::restore(d.serial, trigger, console).map_err(VmError::Mismatch)?
            }
            None => SerialDevice::new(trigger, console),
        };
        let serial = Arc::new(Mutex::new(serial));
        let mut pio = Bus::default();
        pio.insert(u64::from(serial::PORT), serial::LEN, serial.clone())?;
        pio.insert(
            u64::from(i8042::PORT),
            i8042::LEN,
            Arc::new(Mutex::new(i8042::I8042)),
        )?;
        pio.insert(
            u64::from(debug_exit::PORT),
            debug_exit::LEN,
            Arc::new(Mutex::new(debug_exit::DebugExit)),
        )?;

        let mut mmio = Bus::default();
        let mut disks = Vec::new();
        if let Some(d) = devices.as_ref() {
            if d.disks.len() != config.disks.len() {
                return Err(VmError::Mismatch("disk count".into()));
            }
        }
        for (i, disk) in config.disks.iter().enumerate() {
            let (addr, irq) = slot(i)?;
            let saved = devices.as_ref().and_then(|d| d.disks.get(i));
            let block = match saved {
                Some((_, b)) => Block::restore(b, &mem, irq.clone())
                    .map_err(|e| VmError::Mismatch(e.to_string()))?,
                None if disk.cow => Block::new_cow(
                    &disk.path,
                    &crate::config::overlay_path(dir, i),
                    irq.clone(),
                )?,
                None => Block::new(&disk.path, disk.read_only, irq.clone())?,
            };
            let evts = vec![block.queue_evt.try_clone().map_err(VmError::EventFd)?];
            let block = Arc::new(Mutex::new(block));
            let transport = attach_virtio(
                &fd,
                &mut mmio,
                &mem,
                addr,
                block.clone(),
                irq,
                evts,
                saved.map(|(t, _)| t),
                &format!("disk {i}"),
            )?;
            disks.push(Disk { block, transport });
        }

        let mut nets = Vec::new();
        if let Some(d) = devices.as_ref() {
            if d.nets.len() != config.nets.len() {
                return Err(VmError::Mismatch("net device count".into()));
            }
        }
        for (j, net) in config.nets.iter().enumerate() {
            let i = config.disks.len() + j;
            let (addr, irq) = slot(i)?;
            let saved = devices.as_ref().and_then(|d| d.nets.get(j));
            let dev = match saved {
                Some((_, n)) => Net::restore(n, &mem, irq.clone())?,
                None => Net::new(&net.tap, mac_for(i), irq.clone())?,
            };
            let evts = vec![
                dev.rx_evt.try_clone().map_err(VmError::EventFd)?,
                dev.tx_evt.try_clone().map_err(VmError::EventFd)?,
            ];
            let dev = Arc::new(Mutex::new(dev));
            let transport = attach_virtio(
                &fd,
                &mut mmio,
                &mem,
                addr,
                dev.clone(),
                irq,
                evts,
                saved.map(|(t, _)| t),
                &format!("net {j}"),
            )?;
            nets.push(NetDev {
                net: dev,
                transport,
            });
        }

        let mut rng = None;
        if let Some(d) = devices.as_ref() {
            if d.rng.is_some() != config.rng {
                return Err(VmError::Mismatch("rng device".into()));
            }
        }
        if config.rng {
            let i = config.disks.len() + config.nets.len();
            let (addr, irq) = slot(i)?;
            let saved = devices.as_ref().and_then(|d| d.rng);
            let dev = match saved {
                Some((_, r)) => Rng::restore(r, &mem, irq.clone()),
                None => Rng::new(irq.clone()),
            }
            .map_err(VmError::EventFd)?;
            let evts = vec![dev.queue_evt.try_clone().map_err(VmError::EventFd)?];
            let dev = Arc::new(Mutex::new(dev));
            let transport = attach_virtio(
                &fd,
                &mut mmio,
                &mem,
                addr,
                dev.clone(),
                irq,
                evts,
                saved.map(|(t, _)| t),
                "rng",
            )?;
            rng = Some(RngDev {
                rng: dev,
                transport,
            });
        }

        let mut vsock = None;
        if let Some(d) = devices.as_ref() {
            if d.vsock.is_some() != config.vsock.is_some() {
                return Err(VmError::Mismatch("vsock device".into()));
            }
        }
        if let Some(vc) = &config.vsock {
            let i = config.device_count() - 1;
            let (addr, irq) = slot(i)?;
            let uds = vc.uds.clone().unwrap_or_else(|| dir.join("vsock.sock"));
            let saved = devices.as_ref().and_then(|d| d.vsock);
            let dev = match saved {
                Some((_, v)) => Vsock::restore(v, &uds, &mem, irq.clone())?,
                None => Vsock::new(u64::from(vc.cid), &uds, irq.clone())?,
            };
            let evts = [&dev.rx_evt, &dev.tx_evt, &dev.ev_evt]
                .iter()
                .map(|e| e.try_clone())
                .collect::<Result<Vec<_>, _>>()
                .map_err(VmError::EventFd)?;
            let dev = Arc::new(Mutex::new(dev));
            let transport = attach_virtio(
                &fd,
                &mut mmio,
                &mem,
                addr,
                dev.clone(),
                irq,
                evts,
                saved.map(|(t, _)| t),
                "vsock",
            )?;
            vsock = Some(VsockDev {
                vsock: dev,
                transport,
            });
        }

        let ctx = VcpuContext {
            pio,
            mmio,
            stop: Arc::new(Mutex::new(None)),
            stop_evt: Arc::new(evt()?),
            mem: mem.clone(),
        };
        Ok((
            kvm,
            Vm {
                config,
                fd,
                mem,
                serial,
                disks,
                nets,
                rng,
                vsock,
                vcpus: Vec::new(),
                ctx,
                paused: false,
            },
        ))
    }

    /// Whether the vCPUs are paused.
    pub fn paused(&self) -> bool {
        self.paused
    }

    /// Pauses every vCPU.
    pub fn pause(&mut self) -> Result<(), VmError> {
        for v in &self.vcpus {
            v.pause()?;
        }
        self.paused = true;
        Ok(())
    }

    /// Resumes every vCPU.
    pub fn resume(&mut self) -> Result<(), VmError> {
        for v in &self.vcpus {
            v.resume()?;
        }
        self.paused = false;
        Ok(())
    }

    /// The saved state of every vCPU (the VM must be paused).
    pub fn save_vcpus(&self) -> Result<Vec<VcpuState>, VmError> {
        self.vcpus
            .iter()
            .map(|v| v.save().map(|b| *b).map_err(VmError::from))
            .collect()
    }

    /// The interrupt controllers and clock.
    pub fn save_state(&self) -> Result<VmState, VmError> {
        let chip = |id| -> Result<kvm_irqchip, VmError> {
            let mut c = kvm_irqchip {
                chip_id: id,
                ..Default::default()
            };
            self.fd
                .get_irqchip(&mut c)
                .map_err(ioctl("KVM_GET_IRQCHIP"))?;
            Ok(c)
        };
        Ok(VmState {
            pic_master: chip(KVM_IRQCHIP_PIC_MASTER)?,
            pic_slave: chip(KVM_IRQCHIP_PIC_SLAVE)?,
            ioapic: chip(KVM_IRQCHIP_IOAPIC)?,
            pit: self.fd.get_pit2().map_err(ioctl("KVM_GET_PIT2"))?,
            clock: self.fd.get_clock().map_err(ioctl("KVM_GET_CLOCK"))?,
        })
    }

    /// Why the VM stopped, if it did.
    pub fn stop_reason(&self) -> Option<ExitReason> {
        self.ctx
            .stop
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Lets this process exit without waiting for KVM to destroy the VM.
    ///
    /// Destroying a VM with an in-kernel irqchip and PIT waits for RCU grace periods (about
    /// 20 ms here, more than everything else a short VM costs). A child forked here keeps a
    /// reference to the VM file and exits only when this process has gone (its pipe reads
    /// end-of-file), so the last reference, and the wait, is the child's. The child closes
    /// every other descriptor first: it holds no terminal, pipe, socket or disk. Once it has
    /// closed the VM file too, it removes the (empty) directories `remove_dirs`: the
    /// monitor's cgroup, which KVM's worker thread of this VM stays in until then.
    pub fn defer_teardown(&self, remove_dirs: &[std::path::PathBuf]) {
        use std::os::fd::AsRawFd;
        use std::os::unix::ffi::OsStrExt;
        let dirs: Vec<std::ffi::CString> = remove_dirs
            .iter()
            .filter_map(|d| std::ffi::CString::new(d.as_os_str().as_bytes()).ok())
            .collect();
        let vm_fd = self.fd.as_raw_fd();
        let mut pipe = [0i32; 2];
        // SAFETY: pipe2 writes two descriptors into the two-element array it is given.
        if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return;
        }
        let [read_end, write_end] = pipe;
        // SAFETY: the child runs only async-signal-safe calls (close_range, read, close,
        // rmdir, nanosleep, _exit) on descriptors, strings built before the fork and stack
        // values it owns, and never returns into Rust code.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let keep = [read_end.min(vm_fd), read_end.max(vm_fd)];
            let mut byte = 0u8;
            // SAFETY: see above; close_range and close take descriptor numbers only, read
            // writes one byte into `byte`, rmdir reads a NUL-terminated string that lives
            // until _exit, nanosleep reads a timespec on the stack, _exit does not return.
            unsafe {
                libc::syscall(libc::SYS_close_range, 0u32, (keep[0] - 1) as u32, 0u32);
                libc::syscall(
                    libc::SYS_close_range,
                    (keep[0] + 1) as u32,
                    (keep[1] - 1) as u32,
                    0u32,
                );
                libc::syscall(libc::SYS_close_range, (keep[1] + 1) as u32, u32::MAX, 0u32);
                libc::read(read_end, (&mut byte as *mut u8).cast(), 1);
                libc::close(vm_fd);
                // KVM's worker thread leaves the cgroup as the VM is destroyed: retry for
                // up to about 2 s while the directory is busy.
                for dir in &dirs {
                    for _ in 0..200 {
                        if libc::rmdir(dir.as_ptr()) == 0 {
                            break;
                        }
                        let pause = libc::timespec {
                            tv_sec: 0,
                            tv_nsec: 10_000_000,
                        };
                        libc::nanosleep(&pause, std::ptr::null_mut());
                    }
                }
                libc::_exit(0);
            }
        }
        // SAFETY: closing our copy of the read end, a descriptor this function created. The
        // write end stays open (close-on-exec) until this process exits.
        unsafe { libc::close(read_end) };
        let _ = write_end;
    }

    /// Stops and joins every vCPU thread.
    pub fn shutdown(&mut self) {
        for v in &mut self.vcpus {
            v.stop();
        }
        self.vcpus.clear();
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.shutdown();
    }
}
