//! The busybox root filesystem every bundle gets.

use super::*;

const BUSYBOX: &str = "/bin/busybox";

/// True if the ELF file at `path` has no PT_INTERP program header (is statically linked).
fn is_static_elf(path: &Path) -> bool {
    let Ok(b) = fs::read(path) else { return false };
    if b.len() < 64 || &b[..4] != b"\x7fELF" || b[4] != 2 {
        return false;
    }
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(b[0x20..0x28].try_into().unwrap_or([0; 8])) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    for i in 0..phnum {
        let o = phoff + i * phentsize;
        if o + 4 > b.len() {
            return false;
        }
        if u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]) == 3 {
            return false; // PT_INTERP: dynamically linked
        }
    }
    true
}

/// The applets of the host's static busybox (panics with "install busybox-static" if there
/// is no static /bin/busybox).
pub fn busybox_applets() -> &'static [String] {
    static APPLETS: OnceLock<Vec<String>> = OnceLock::new();
    APPLETS.get_or_init(|| {
        if !Path::new(BUSYBOX).is_file() || !is_static_elf(Path::new(BUSYBOX)) {
            panic!("{BUSYBOX} is missing or not statically linked: install busybox-static");
        }
        let out = Command::new(BUSYBOX)
            .arg("--list")
            .output()
            .expect("busybox --list");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .filter(|a| !a.is_empty() && *a != "busybox" && !a.contains('/'))
            .map(String::from)
            .collect()
    })
}

pub const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
user:x:1000:1000:user:/home/user:/bin/sh\n\
nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";

pub const GROUP: &str = "root:x:0:\nwheel:x:10:\naudio:x:29:\nuser:x:1000:\nnogroup:x:65534:\n";

/// Fills `root` with a static busybox, a link per applet in /bin and the usual directories.
pub fn build_rootfs(root: &Path) {
    let applets = busybox_applets();
    for d in [
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "proc",
        "sys",
        "dev",
        "tmp",
        "etc",
        "root",
        "home/user",
        "var",
        "run",
    ] {
        fs::create_dir_all(root.join(d)).expect("mkdir in rootfs");
    }
    fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777)).expect("chmod");
    fs::copy(BUSYBOX, root.join("bin/busybox")).expect("copy busybox into the rootfs");
    fs::set_permissions(root.join("bin/busybox"), fs::Permissions::from_mode(0o755))
        .expect("chmod busybox");
    for a in applets {
        symlink("busybox", root.join("bin").join(a)).expect("applet link");
    }
    fs::write(root.join("etc/passwd"), PASSWD).expect("write passwd");
    fs::write(root.join("etc/group"), GROUP).expect("write group");
    fs::write(root.join("etc/hostname"), "rootfs-hostname\n").expect("write hostname");
}
