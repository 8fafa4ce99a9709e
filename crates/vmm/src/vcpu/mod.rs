//! vCPU threads. Each vCPU runs `KVM_RUN` on its own thread, dispatches port I/O and MMIO
//! exits to the buses, and obeys requests (pause, save state, resume, stop) sent on a channel;
//! a real-time signal kicks it out of `KVM_RUN` to look at them.

pub mod regs;
pub mod state;

use crate::devices::{Bus, GuestRequest};
use kvm_ioctls::{VcpuExit, VcpuFd};
use state::VcpuState;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, Once};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use vmm_sys_util::eventfd::EventFd;
use vmm_sys_util::signal::{register_signal_handler, Killable, SIGRTMIN};

/// Why a VM stopped, as its vCPUs saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The guest wrote this code to the debug-exit port.
    DebugExit(u8),
    /// The guest reset through the i8042 or a KVM system event.
    Reset,
    /// The guest halted with nothing to wake it (no in-kernel interrupt controller).
    Halted,
    /// Something the VMM cannot handle: the report.
    Error(String),
}

/// Requests to a vCPU thread.
enum Request {
    Pause,
    Resume,
    Save,
    Restore(Box<VcpuState>),
    Stop,
}

/// Answers of a vCPU thread.
enum Response {
    Paused,
    Resumed,
    Saved(Result<Box<VcpuState>, String>),
    Restored(Result<(), String>),
}

/// A vCPU request failed.
#[derive(Debug, thiserror::Error)]
pub enum VcpuError {
    /// vcpu {0} did not answer within {1:?}
    #[error("vcpu {0} did not answer within {1:?}")]
    Timeout(u8, Duration),
    /// vcpu {0} has stopped
    #[error("vcpu {0} has stopped")]
    Gone(u8),
    /// vcpu {0}: {1}
    #[error("vcpu {0}: {1}")]
    State(u8, String),
    /// cannot start vcpu thread: {0}
    #[error("cannot start vcpu thread: {0}")]
    Spawn(std::io::Error),
    /// vcpu seccomp filter: {0}
    #[error("vcpu seccomp filter: {0}")]
    Seccomp(String),
    /// cannot install the vcpu kick signal handler: {0}
    #[error("cannot install the vcpu kick signal handler: {0}")]
    Signal(vmm_sys_util::errno::Error),
}

/// Shared by every vCPU of a VM: the buses and where to report a stop.
#[derive(Clone)]
pub struct VcpuContext {
    pub pio: Bus,
    pub mmio: Bus,
    /// The first reason wins.
    pub stop: Arc<Mutex<Option<StopReason>>>,
    /// Signalled when `stop` is set.
    pub stop_evt: Arc<EventFd>,
    /// Guest memory, to read the instruction behind an emulation failure.
    pub mem: vm_memory::GuestMemoryMmap,
}

impl VcpuContext {
    fn report(&self, reason: StopReason) {
        let mut stop = self.stop.lock().unwrap_or_else(|p| p.into_inner());
        if stop.is_none() {
            *stop = Some(reason);
        }
        let _ = self.stop_evt.write(1);
    }
}

/// The main thread's handle on one vCPU thread.
pub struct VcpuHandle {
    id: u8,
    tx: Sender<Request>,
    rx: Receiver<Response>,
    thread: Option<JoinHandle<()>>,
}

const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

fn kick_signal() -> i32 {
    SIGRTMIN()
}

extern "C" fn on_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}

fn install_kick_handler() -> Result<(), VcpuError> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        result = register_signal_handler(kick_signal(), on_kick).map_err(VcpuError::Signal);
    });
    result
}

impl VcpuHandle {
    /// Starts vCPU `id` on its own thread; it runs the guest at once unless `paused`.
    pub fn spawn(
        id: u8,
        fd: VcpuFd,
        ctx: VcpuContext,
        paused: bool,
    ) -> Result<VcpuHandle, VcpuError> {
        install_kick_handler()?;
        let filter =
            crate::seccomp::vcpu_filter().map_err(|e| VcpuError::Seccomp(e.to_string()))?;
        let (tx, thread_rx) = channel();
        let (thread_tx, rx) = channel();
        let thread = std::thread::Builder::new()
            .name(format!("vcpu{id}"))
            .spawn(move || {
                if let Err(e) = crate::seccomp::apply(&filter) {
                    ctx.report(StopReason::Error(format!("vcpu {id}: {e}")));
                    return;
                }
                Vcpu {
                    id,
                    fd,
                    ctx,
                    rx: thread_rx,
                    tx: thread_tx,
                }
                .run(paused)
            })
            .map_err(VcpuError::Spawn)?;
        Ok(VcpuHandle {
            id,
            tx,
            rx,
            thread: Some(thread),
        })
    }

    fn kick(&self) {
        if let Some(t) = &self.thread {
            let _ = t.kill(kick_signal());
        }
    }

    /// Sends `req` and waits for the answer, kicking the thread out of `KVM_RUN` until then.
    fn ask(&self, req: Request) -> Result<Response, VcpuError> {
        self.tx.send(req).map_err(|_| VcpuError::Gone(self.id))?;
        let start = Instant::now();
        loop {
            self.kick();
            match self.rx.recv_timeout(Duration::from_millis(2)) {
                Ok(r) => return Ok(r),
                Err(RecvTimeoutError::Disconnected) => return Err(VcpuError::Gone(self.id)),
                Err(RecvTimeoutError::Timeout) if start.elapsed() > ANSWER_TIMEOUT => {
                    return Err(VcpuError::Timeout(self.id, ANSWER_TIMEOUT))
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }

    /// Stops running the guest until [`resume`](Self::resume).
    pub fn pause(&self) -> Result<(), VcpuError> {
        self.ask(Request::Pause).map(|_| ())
    }

    /// Runs the guest again.
    pub fn resume(&self) -> Result<(), VcpuError> {
        self.ask(Request::Resume).map(|_| ())
    }

    /// The vCPU's state (the vCPU must be paused).
    pub fn save(&self) -> Result<Box<VcpuState>, VcpuError> {
        match self.ask(Request::Save)? {
            Response::Saved(r) => r.map_err(|e| VcpuError::State(self.id, e)),
            _ => Err(VcpuError::State(self.id, "unexpected answer".into())),
        }
    }

    /// Loads a saved state (the vCPU must be paused).
    pub fn restore(&self, s: Box<VcpuState>) -> Result<(), VcpuError> {
        match self.ask(Request::Restore(s))? {
            Response::Restored(r) => r.map_err(|e| VcpuError::State(self.id, e)),
            _ => Err(VcpuError::State(self.id, "unexpected answer".into())),
        }
    }

    /// Ends the thread and waits for it.
    pub fn stop(&mut self) {
        let _ = self.tx.send(Request::Stop);
        if let Some(t) = self.thread.take() {
            let deadline = Instant::now() + ANSWER_TIMEOUT;
            while !t.is_finished() && Instant::now() < deadline {
                let _ = t.kill(kick_signal());
                std::thread::sleep(Duration::from_millis(1));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

impl Drop for VcpuHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Vcpu {
    id: u8,
    fd: VcpuFd,
    ctx: VcpuContext,
    rx: Receiver<Request>,
    tx: Sender<Response>,
}

enum Flow {
    Continue,
    Exit,
}

impl Vcpu {
    fn run(mut self, paused: bool) {
        if paused && matches!(self.paused_loop(), Flow::Exit) {
            return;
        }
        loop {
            match self.rx.try_recv() {
                Ok(Request::Pause) => {
                    let _ = self.tx.send(Response::Paused);
                    if matches!(self.paused_loop(), Flow::Exit) {
                        return;
                    }
                }
                Ok(Request::Stop) => return,
                Ok(Request::Resume) => {
                    let _ = self.tx.send(Response::Resumed);
                }
                Ok(Request::Save) => {
                    let _ = self
                        .tx
                        .send(Response::Saved(Err("the vcpu is running".into())));
                }
                Ok(Request::Restore(_)) => {
                    let _ = self
                        .tx
                        .send(Response::Restored(Err("the vcpu is running".into())));
                }
                Err(std::sync::mpsc::TryRecvError::Disconnected) => return,
                Err(std::sync::mpsc::TryRecvError::Empty) => {}
            }
            match self.run_once() {
                Ok(()) => {}
                Err(reason) => {
                    self.ctx.report(reason);
                    // Stay until told to stop, so state can still be read.
                    let _ = self.paused_loop();
                    return;
                }
            }
        }
    }

    /// Serves requests while the guest is not running.
    fn paused_loop(&mut self) -> Flow {
        while let Ok(req) = self.rx.recv() {
            match req {
                Request::Pause => {
                    let _ = self.tx.send(Response::Paused);
                }
                Request::Resume => {
                    let _ = self.tx.send(Response::Resumed);
                    return Flow::Continue;
                }
                Request::Save => {
                    let _ = self
                        .tx
                        .send(Response::Saved(state::save(&self.fd).map(Box::new)));
                }
                Request::Restore(s) => {
                    let _ = self
                        .tx
                        .send(Response::Restored(state::restore(&self.fd, &s)));
                }
                Request::Stop => return Flow::Exit,
            }
        }
        Flow::Exit
    }

    /// One `KVM_RUN` and its exit.
    fn run_once(&mut self) -> Result<(), StopReason> {
        let id = self.id;
        let exit = match self.fd.run() {
            Ok(exit) => exit,
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                self.fd.set_kvm_immediate_exit(0);
                return Ok(());
            }
            Err(e) => return Err(StopReason::Error(format!("vcpu {id}: KVM_RUN failed: {e}"))),
        };
        let request = match exit {
            VcpuExit::IoIn(port, data) => {
                if !self.ctx.pio.read(u64::from(port), data) {
                    data.fill(0xff);
                }
                None
            }
            VcpuExit::IoOut(port, data) => self.ctx.pio.write(u64::from(port), data).flatten(),
            VcpuExit::MmioRead(addr, data) => {
                if !self.ctx.mmio.read(addr, data) {
                    data.fill(0);
                }
                None
            }
            VcpuExit::MmioWrite(addr, data) => self.ctx.mmio.write(addr, data).flatten(),
            VcpuExit::Hlt => return Err(StopReason::Halted),
            VcpuExit::Shutdown => {
                return Err(StopReason::Error(format!(
                    "vcpu {id}: the guest shut down (triple fault){}",
                    self.where_()
                )))
            }
            VcpuExit::SystemEvent(kind, _) => {
                return match kind {
                    kvm_bindings::KVM_SYSTEM_EVENT_RESET
                    | kvm_bindings::KVM_SYSTEM_EVENT_SHUTDOWN => Err(StopReason::Reset),
                    other => Err(StopReason::Error(format!(
                        "vcpu {id}: unhandled system event {other}"
                    ))),
                }
            }
            VcpuExit::FailEntry(reason, cpu) => {
                return Err(StopReason::Error(format!(
                    "vcpu {id}: KVM could not enter the guest (hardware reason {reason:#x}, cpu {cpu}){}",
                    self.where_()
                )))
            }
            VcpuExit::InternalError => return self.internal_error(),
            VcpuExit::Intr | VcpuExit::IrqWindowOpen => None,
            other => {
                let name = format!("{other:?}");
                return Err(StopReason::Error(format!(
                    "vcpu {id}: unhandled exit {name}{}",
                    self.where_()
                )));
            }
        };
        match request {
            None => Ok(()),
            Some(GuestRequest::Exit(code)) => Err(StopReason::DebugExit(code)),
            Some(GuestRequest::Reset) => Err(StopReason::Reset),
        }
    }

    /// KVM could not go on. An `int3` that KVM's emulator refuses (kvm_pvm does, in Linux's
    /// int3 self-test) is delivered to the guest as the #BP it is; anything else stops the
    /// VM with the suberror and the instruction bytes.
    fn internal_error(&mut self) -> Result<(), StopReason> {
        let id = self.id;
        // SAFETY: the exit reason is KVM_EXIT_INTERNAL_ERROR, so `internal` is the union
        // member KVM filled in; it is plain data.
        let internal = unsafe { self.fd.get_kvm_run().__bindgen_anon_1.internal };
        let regs = self.fd.get_regs().map_err(|e| {
            StopReason::Error(format!("vcpu {id}: KVM internal error; KVM_GET_REGS: {e}"))
        })?;
        let mut insn = [0u8; 15];
        let mut len = 0;
        if let Ok(t) = self.fd.translate_gva(regs.rip) {
            if t.valid != 0 {
                for (i, b) in insn.iter_mut().enumerate() {
                    let addr = vm_memory::GuestAddress(t.physical_address + i as u64);
                    match vm_memory::Bytes::read_obj::<u8>(&self.ctx.mem, addr) {
                        Ok(v) => {
                            *b = v;
                            len += 1;
                        }
                        Err(_) => break,
                    }
                }
            }
        }
        if internal.suberror == kvm_bindings::KVM_INTERNAL_ERROR_EMULATION
            && len > 0
            && insn[0] == 0xcc
        {
            let mut regs = regs;
            regs.rip += 1;
            let events = self.fd.get_vcpu_events().and_then(|mut ev| {
                ev.exception.injected = 1;
                ev.exception.nr = 3; // #BP
                ev.exception.has_error_code = 0;
                self.fd.set_regs(&regs)?;
                self.fd.set_vcpu_events(&ev)
            });
            if events.is_ok() {
                return Ok(());
            }
        }
        let bytes: Vec<String> = insn[..len].iter().map(|b| format!("{b:02x}")).collect();
        let what = if internal.suberror == kvm_bindings::KVM_INTERNAL_ERROR_EMULATION {
            "an instruction KVM could not emulate".to_string()
        } else {
            format!("suberror {}", internal.suberror)
        };
        Err(StopReason::Error(format!(
            "vcpu {id}: KVM internal error ({what}) at rip {:#x}{}",
            regs.rip,
            if bytes.is_empty() {
                String::new()
            } else {
                format!(", instruction bytes {}", bytes.join(" "))
            }
        )))
    }

    /// " at rip …" for reports.
    fn where_(&self) -> String {
        match self.fd.get_regs() {
            Ok(r) => format!(" at rip {:#x}", r.rip),
            Err(_) => String::new(),
        }
    }
}
