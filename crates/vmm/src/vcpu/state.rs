//! A vCPU's architectural state for snapshots: registers, FPU/XSAVE, MSRs, local APIC, events.

use kvm_bindings::{
    kvm_fpu, kvm_lapic_state, kvm_mp_state, kvm_msr_entry, kvm_regs, kvm_sregs, kvm_vcpu_events,
    kvm_xcrs, kvm_xsave, Msrs,
};
use kvm_ioctls::VcpuFd;
use serde::{Deserialize, Serialize};

/// MSRs saved with a vCPU (the ones a guest kernel sets up and relies on).
const SAVED_MSRS: &[u32] = &[
    0x10,        // IA32_TSC
    0x1b,        // IA32_APIC_BASE
    0x174,       // SYSENTER_CS
    0x175,       // SYSENTER_ESP
    0x176,       // SYSENTER_EIP
    0x1a0,       // MISC_ENABLE
    0x277,       // PAT
    0xc000_0081, // STAR
    0xc000_0082, // LSTAR
    0xc000_0083, // CSTAR
    0xc000_0084, // SYSCALL_MASK
    0xc000_0100, // FS_BASE
    0xc000_0101, // GS_BASE
    0xc000_0102, // KERNEL_GS_BASE
    0xc000_0103, // TSC_AUX
];

/// The legacy FPU and SSE registers (`kvm_fpu`, which has no serde form).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FpuState {
    pub fpr: Vec<[u8; 16]>,
    pub fcw: u16,
    pub fsw: u16,
    pub ftwx: u8,
    pub last_opcode: u16,
    pub last_ip: u64,
    pub last_dp: u64,
    pub xmm: Vec<[u8; 16]>,
    pub mxcsr: u32,
}

impl From<&kvm_fpu> for FpuState {
    fn from(f: &kvm_fpu) -> Self {
        FpuState {
            fpr: f.fpr.to_vec(),
            fcw: f.fcw,
            fsw: f.fsw,
            ftwx: f.ftwx,
            last_opcode: f.last_opcode,
            last_ip: f.last_ip,
            last_dp: f.last_dp,
            xmm: f.xmm.to_vec(),
            mxcsr: f.mxcsr,
        }
    }
}

impl FpuState {
    /// The KVM form (missing registers are zero, extra ones ignored).
    pub fn to_kvm(&self) -> kvm_fpu {
        let mut f = kvm_fpu {
            fcw: self.fcw,
            fsw: self.fsw,
            ftwx: self.ftwx,
            last_opcode: self.last_opcode,
            last_ip: self.last_ip,
            last_dp: self.last_dp,
            mxcsr: self.mxcsr,
            ..Default::default()
        };
        for (d, s) in f.fpr.iter_mut().zip(&self.fpr) {
            *d = *s;
        }
        for (d, s) in f.xmm.iter_mut().zip(&self.xmm) {
            *d = *s;
        }
        f
    }
}

/// One vCPU's state.
#[derive(Serialize, Deserialize)]
pub struct VcpuState {
    pub regs: kvm_regs,
    pub sregs: kvm_sregs,
    pub fpu: FpuState,
    pub xsave: Option<kvm_xsave>,
    pub xcrs: Option<kvm_xcrs>,
    pub msrs: Vec<(u32, u64)>,
    pub lapic: kvm_lapic_state,
    pub mp_state: kvm_mp_state,
    pub events: kvm_vcpu_events,
}

/// Reads the state of a paused vCPU.
pub fn save(fd: &VcpuFd) -> Result<VcpuState, String> {
    let e = |what: &str| {
        let what = what.to_string();
        move |err: kvm_ioctls::Error| format!("{what}: {err}")
    };
    // Read the MSRs one by one: a host may not have all of them.
    let mut msrs = Vec::new();
    for &index in SAVED_MSRS {
        let entry = kvm_msr_entry {
            index,
            ..Default::default()
        };
        let mut one = Msrs::from_entries(&[entry]).map_err(|err| format!("msrs: {err:?}"))?;
        if fd.get_msrs(&mut one).ok() == Some(1) {
            if let Some(v) = one.as_slice().first() {
                msrs.push((index, v.data));
            }
        }
    }
    Ok(VcpuState {
        // Order matters for KVM: events and mp_state before registers.
        events: fd.get_vcpu_events().map_err(e("KVM_GET_VCPU_EVENTS"))?,
        mp_state: fd.get_mp_state().map_err(e("KVM_GET_MP_STATE"))?,
        regs: fd.get_regs().map_err(e("KVM_GET_REGS"))?,
        sregs: fd.get_sregs().map_err(e("KVM_GET_SREGS"))?,
        fpu: FpuState::from(&fd.get_fpu().map_err(e("KVM_GET_FPU"))?),
        xsave: fd.get_xsave().ok(),
        xcrs: fd.get_xcrs().ok(),
        msrs,
        lapic: fd.get_lapic().map_err(e("KVM_GET_LAPIC"))?,
    })
}

/// Loads a saved state into a paused vCPU.
pub fn restore(fd: &VcpuFd, s: &VcpuState) -> Result<(), String> {
    let e = |what: &str| {
        let what = what.to_string();
        move |err: kvm_ioctls::Error| format!("{what}: {err}")
    };
    fd.set_sregs(&s.sregs).map_err(e("KVM_SET_SREGS"))?;
    fd.set_regs(&s.regs).map_err(e("KVM_SET_REGS"))?;
    fd.set_fpu(&s.fpu.to_kvm()).map_err(e("KVM_SET_FPU"))?;
    if let Some(x) = &s.xsave {
        // SAFETY: the buffer is a complete kvm_xsave read from KVM_GET_XSAVE of a vCPU of
        // the same kind (the snapshot's), so KVM reads no more than the struct holds.
        unsafe { fd.set_xsave(x) }.map_err(e("KVM_SET_XSAVE"))?;
    }
    if let Some(x) = &s.xcrs {
        fd.set_xcrs(x).map_err(e("KVM_SET_XCRS"))?;
    }
    let entries: Vec<kvm_msr_entry> = s
        .msrs
        .iter()
        .map(|&(index, data)| kvm_msr_entry {
            index,
            data,
            ..Default::default()
        })
        .collect();
    if !entries.is_empty() {
        let msrs = Msrs::from_entries(&entries).map_err(|err| format!("msrs: {err:?}"))?;
        fd.set_msrs(&msrs).map_err(e("KVM_SET_MSRS"))?;
    }
    fd.set_lapic(&s.lapic).map_err(e("KVM_SET_LAPIC"))?;
    fd.set_mp_state(s.mp_state).map_err(e("KVM_SET_MP_STATE"))?;
    fd.set_vcpu_events(&s.events)
        .map_err(e("KVM_SET_VCPU_EVENTS"))?;
    Ok(())
}
