//! The cgroup v2 device controller: OCI device rules compiled into an eBPF program of type
//! `BPF_PROG_TYPE_CGROUP_DEVICE` (what runc and crun do; cgroup v2 has no devices.allow).
//!
//! The program sees `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }`
//! with `access_type = access << 16 | type`. Rules are emitted last first, each returning
//! on a match, so the last matching rule decides — the semantics of the v1 lists. No match
//! denies.

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};
use sys::bpf::Insn;

const LDX_W: u8 = 0x61; // r_dst = *(u32 *)(r_src + off)
const AND_K: u8 = 0x57;
const RSH_K: u8 = 0x77;
const MOV_X: u8 = 0xbf;
const MOV_K: u8 = 0xb7;
const JNE_K: u8 = 0x55;
const EXIT: u8 = 0x95;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | (dst & 0x0f),
        off,
        imm,
    }
}

fn access_bits(access: &str) -> i32 {
    access.chars().fold(0, |a, c| {
        a | match c {
            'm' => 1,
            'r' => 2,
            'w' => 4,
            _ => 0,
        }
    })
}

/// Compiles device rules into a program.
pub fn compile(rules: &[LinuxDeviceCgroup]) -> Vec<Insn> {
    let mut p = vec![
        insn(LDX_W, 2, 1, 0, 0),      // r2 = access_type
        insn(AND_K, 2, 0, 0, 0xffff), // r2 = type
        insn(LDX_W, 3, 1, 0, 0),
        insn(RSH_K, 3, 0, 0, 16), // r3 = access
        insn(LDX_W, 4, 1, 4, 0),  // r4 = major
        insn(LDX_W, 5, 1, 8, 0),  // r5 = minor
    ];
    for r in rules.iter().rev() {
        let mut checks: Vec<Insn> = Vec::new();
        match r.typ() {
            Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => {
                checks.push(insn(JNE_K, 2, 0, 0, 2))
            }
            Some(LinuxDeviceType::B) => checks.push(insn(JNE_K, 2, 0, 0, 1)),
            // "a" (or none) matches every type; "p" (fifos) never reaches the device hook.
            Some(LinuxDeviceType::P) => continue,
            _ => {}
        }
        let acc = access_bits(r.access().as_deref().unwrap_or("rwm"));
        if acc != 7 {
            checks.push(insn(MOV_X, 6, 3, 0, 0));
            checks.push(insn(AND_K, 6, 0, 0, !acc));
            checks.push(insn(JNE_K, 6, 0, 0, 0));
        }
        if let Some(m) = r.major().filter(|m| *m >= 0) {
            checks.push(insn(JNE_K, 4, 0, 0, m as i32));
        }
        if let Some(m) = r.minor().filter(|m| *m >= 0) {
            checks.push(insn(JNE_K, 5, 0, 0, m as i32));
        }
        // Every jump skips to the end of this block: past the remaining checks and the
        // two instructions that return the verdict.
        let n = checks.len();
        for (i, c) in checks.iter_mut().enumerate() {
            if c.code == JNE_K {
                c.off = (n - i - 1 + 2) as i16;
            }
        }
        let catch_all = checks.is_empty();
        p.extend(checks);
        p.push(insn(MOV_K, 0, 0, 0, i32::from(r.allow())));
        p.push(insn(EXIT, 0, 0, 0, 0));
        if catch_all {
            // Matches everything: what follows is unreachable, which the verifier refuses.
            return p;
        }
    }
    p.push(insn(MOV_K, 0, 0, 0, 0));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny interpreter of the instructions we emit, to check the verdicts.
    fn run(p: &[Insn], typ: u32, access: u32, major: u32, minor: u32) -> u64 {
        let ctx = [(access << 16) | typ, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let (d, s) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                LDX_W => r[d] = u64::from(ctx[(i.off / 4) as usize]),
                AND_K => r[d] &= i.imm as i64 as u64,
                RSH_K => r[d] >>= i.imm,
                MOV_X => r[d] = r[s],
                MOV_K => r[d] = i.imm as i64 as u64,
                JNE_K => {
                    if r[d] != i.imm as i64 as u64 {
                        pc += i.off as usize;
                    }
                }
                EXIT => return r[0],
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    fn rule(
        allow: bool,
        typ: Option<LinuxDeviceType>,
        major: Option<i64>,
        minor: Option<i64>,
        access: &str,
    ) -> LinuxDeviceCgroup {
        let mut d = LinuxDeviceCgroup::default();
        d.set_allow(allow);
        d.set_typ(typ);
        d.set_major(major);
        d.set_minor(minor);
        d.set_access(Some(access.into()));
        d
    }

    #[test]
    fn last_matching_rule_wins() {
        let rules = vec![
            rule(false, Some(LinuxDeviceType::A), None, None, "rwm"),
            rule(true, Some(LinuxDeviceType::C), Some(1), Some(3), "rwm"),
            rule(true, Some(LinuxDeviceType::C), Some(136), None, "rw"),
            rule(false, Some(LinuxDeviceType::C), Some(1), Some(3), "w"),
        ];
        let p = compile(&rules);
        assert_eq!(run(&p, 2, 2, 1, 3), 1, "read /dev/null allowed");
        assert_eq!(
            run(&p, 2, 4, 1, 3),
            0,
            "write /dev/null denied by the last rule"
        );
        assert_eq!(run(&p, 2, 6, 136, 7), 1, "pty rw allowed");
        assert_eq!(run(&p, 2, 1, 136, 7), 0, "pty mknod not allowed");
        assert_eq!(run(&p, 1, 2, 8, 0), 0, "block device denied");
        assert_eq!(run(&p, 2, 2, 1, 11), 0, "kmsg denied");
        // A catch-all rule ends the program (the verifier refuses unreachable code).
        let p = compile(&rules[..1]);
        assert_eq!(p.len(), 8);
        assert_eq!(run(&p, 2, 2, 1, 3), 0);
    }
}
