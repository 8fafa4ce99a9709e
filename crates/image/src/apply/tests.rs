//! Unit tests of layer apply (run as root: owners, device nodes, trusted xattrs).

use super::*;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

pub(crate) fn tmpdir(name: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let p = std::env::temp_dir().join(format!(
        "berth-apply-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(p.join("root")).expect("mkdir");
    p
}

/// A tar built entry by entry with raw names (tar::Builder refuses hostile paths).
#[derive(Default)]
pub(crate) struct Tar {
    out: Vec<u8>,
}

impl Tar {
    pub(crate) fn raw(
        &mut self,
        name: &str,
        kind: tar::EntryType,
        link: &str,
        data: &[u8],
        mode: u32,
    ) -> &mut Self {
        let mut h = tar::Header::new_gnu();
        let g = h.as_gnu_mut().expect("gnu header");
        g.name[..name.len()].copy_from_slice(name.as_bytes());
        g.linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_000_000);
        h.set_cksum();
        self.out.extend_from_slice(h.as_bytes());
        self.out.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.out.extend(std::iter::repeat_n(0, pad));
        self
    }
    pub(crate) fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.raw(name, tar::EntryType::Regular, "", data, 0o644)
    }
    pub(crate) fn dir(&mut self, name: &str) -> &mut Self {
        self.raw(name, tar::EntryType::Directory, "", b"", 0o755)
    }
    pub(crate) fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(name, tar::EntryType::Symlink, target, b"", 0o777)
    }
    pub(crate) fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(name, tar::EntryType::Link, target, b"", 0o644)
    }
    pub(crate) fn finish(&mut self) -> Vec<u8> {
        let mut v = std::mem::take(&mut self.out);
        v.extend(std::iter::repeat_n(0, 1024));
        v
    }
}

fn apply(bytes: &[u8], root: &Path, w: Whiteouts) -> Result<Applied> {
    apply_layer(bytes, root, w, &Limits::default())
}

#[test]
fn regular_content_and_metadata() {
    let t = tmpdir("meta");
    let root = t.join("root");
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(2);
    h.set_mode(0o4755);
    h.set_uid(1000);
    h.set_gid(1001);
    h.set_mtime(1_234_567);
    // security.capability v2: effective, CAP_NET_BIND_SERVICE permitted.
    let cap: [u8; 20] = [1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    b.append_pax_extensions([
        ("SCHILY.xattr.security.capability", &cap[..]),
        ("SCHILY.xattr.user.note", &b"hi"[..]),
    ])
    .expect("pax");
    b.append_data(&mut h, "bin/ping", &b"ok"[..])
        .expect("append");
    let mut d = tar::Header::new_gnu();
    d.set_entry_type(tar::EntryType::Directory);
    d.set_mode(0o1777);
    d.set_mtime(42);
    d.set_size(0);
    b.append_data(&mut d, "tmp", &b""[..]).expect("dir");
    let mut l = tar::Header::new_gnu();
    l.set_entry_type(tar::EntryType::Symlink);
    l.set_size(0);
    b.append_link(&mut l, "bin/sh", "busybox").expect("symlink");
    let mut hl = tar::Header::new_gnu();
    hl.set_entry_type(tar::EntryType::Link);
    hl.set_size(0);
    b.append_link(&mut hl, "bin/ping6", "bin/ping")
        .expect("hardlink");
    let mut c = tar::Header::new_gnu();
    c.set_entry_type(tar::EntryType::Char);
    c.set_device_major(1).expect("major");
    c.set_device_minor(3).expect("minor");
    c.set_mode(0o666);
    c.set_size(0);
    b.append_data(&mut c, "dev/null", &b""[..]).expect("char");
    let mut f = tar::Header::new_gnu();
    f.set_entry_type(tar::EntryType::Fifo);
    f.set_size(0);
    f.set_mode(0o600);
    b.append_data(&mut f, "run/fifo", &b""[..]).expect("fifo");
    let bytes = b.into_inner().expect("tar");

    let applied = apply(&bytes, &root, Whiteouts::Remove).expect("apply");
    assert_eq!(applied.diff_id, Digest::sha256(&bytes));
    let m = std::fs::metadata(root.join("bin/ping")).expect("ping");
    assert_eq!(std::fs::read(root.join("bin/ping")).expect("read"), b"ok");
    assert_eq!(m.permissions().mode() & 0o7777, 0o4755);
    assert_eq!((m.uid(), m.gid()), (1000, 1001));
    assert_eq!(m.mtime(), 1_234_567);
    assert_eq!(
        xattr::get(root.join("bin/ping"), "security.capability").expect("getxattr"),
        Some(cap.to_vec())
    );
    assert_eq!(
        xattr::get(root.join("bin/ping"), "user.note").expect("getxattr"),
        Some(b"hi".to_vec())
    );
    let tmp = std::fs::metadata(root.join("tmp")).expect("tmp");
    assert_eq!(tmp.permissions().mode() & 0o7777, 0o1777);
    assert_eq!(tmp.mtime(), 42);
    assert_eq!(
        std::fs::read_link(root.join("bin/sh")).expect("readlink"),
        Path::new("busybox")
    );
    assert_eq!(
        std::fs::metadata(root.join("bin/ping6"))
            .expect("ping6")
            .ino(),
        m.ino()
    );
    let dev = std::fs::metadata(root.join("dev/null")).expect("dev");
    assert!(dev.file_type().is_char_device());
    assert_eq!(dev.rdev(), stat::makedev(1, 3));
    assert!(std::fs::metadata(root.join("run/fifo"))
        .expect("fifo")
        .file_type()
        .is_fifo());
    let _ = std::fs::remove_dir_all(t);
}

#[test]
fn compressed_layers_have_the_uncompressed_diff_id() {
    let raw = Tar::default()
        .dir("etc")
        .file("etc/hostname", b"x\n")
        .finish();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    io::Write::write_all(&mut gz, &raw).expect("gzip");
    let gz = gz.finish().expect("gzip");
    let zst = zstd::stream::encode_all(&raw[..], 3).expect("zstd");
    for (what, bytes) in [("plain", &raw), ("gzip", &gz), ("zstd", &zst)] {
        let t = tmpdir(what);
        let a = apply(bytes, &t.join("root"), Whiteouts::Overlay).expect(what);
        assert_eq!(a.diff_id, Digest::sha256(&raw), "{what}");
        assert_eq!(
            std::fs::read(t.join("root/etc/hostname")).expect("read"),
            b"x\n"
        );
        let _ = std::fs::remove_dir_all(t);
    }
}

#[test]
fn whiteouts_removed() {
    let t = tmpdir("wh-remove");
    let root = t.join("root");
    let l1 = Tar::default()
        .dir("a")
        .file("a/x", b"1")
        .file("a/y", b"2")
        .dir("b")
        .file("b/old", b"3")
        .file("keep", b"4")
        .finish();
    let l2 = Tar::default()
        .file("a/.wh.x", b"")
        .file("b/new", b"5")
        .file("b/.wh..wh..opq", b"")
        .file(".wh.keep", b"")
        .finish();
    apply(&l1, &root, Whiteouts::Remove).expect("l1");
    apply(&l2, &root, Whiteouts::Remove).expect("l2");
    assert!(!root.join("a/x").exists());
    assert!(root.join("a/y").exists());
    assert!(!root.join("a/.wh.x").exists());
    assert!(!root.join("b/old").exists());
    assert_eq!(std::fs::read(root.join("b/new")).expect("new"), b"5");
    assert!(!root.join("keep").exists());
    let _ = std::fs::remove_dir_all(t);
}

#[test]
fn whiteouts_in_overlay_form() {
    let t = tmpdir("wh-overlay");
    let root = t.join("root");
    let l2 = Tar::default()
        .file("a/.wh.x", b"")
        .dir("b")
        .file("b/.wh..wh..opq", b"")
        .finish();
    apply(&l2, &root, Whiteouts::Overlay).expect("apply");
    let m = std::fs::symlink_metadata(root.join("a/x")).expect("whiteout device");
    assert!(m.file_type().is_char_device());
    assert_eq!(m.rdev(), 0);
    assert_eq!(
        xattr::get(root.join("b"), OVERLAY_OPAQUE_XATTR).expect("xattr"),
        Some(b"y".to_vec())
    );
    let _ = std::fs::remove_dir_all(t);
}

#[test]
fn layer_cannot_set_overlay_xattrs() {
    let t = tmpdir("overlay-xattr");
    let mut b = tar::Builder::new(Vec::new());
    b.append_pax_extensions([("SCHILY.xattr.trusted.overlay.redirect", &b"/etc"[..])])
        .expect("pax");
    let mut d = tar::Header::new_gnu();
    d.set_entry_type(tar::EntryType::Directory);
    d.set_mode(0o755);
    d.set_size(0);
    b.append_data(&mut d, "d", &b""[..]).expect("dir");
    let bytes = b.into_inner().expect("tar");
    apply(&bytes, &t.join("root"), Whiteouts::Overlay).expect("apply");
    assert_eq!(
        xattr::get(t.join("root/d"), "trusted.overlay.redirect").expect("get"),
        None
    );
    let _ = std::fs::remove_dir_all(t);
}

/// Each hostile layer is refused, names its entry, and writes nothing outside the root.
#[test]
fn hostile_layers_refused() {
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "dotdot",
            Tar::default().file("../escaped", b"x").finish(),
            "../escaped",
        ),
        (
            "dotdot-deep",
            Tar::default().file("a/../../escaped", b"x").finish(),
            "a/../../escaped",
        ),
        (
            "absolute",
            Tar::default().file("/escaped", b"x").finish(),
            "/escaped",
        ),
        (
            "symlink-abs",
            Tar::default()
                .symlink("evil", "/OUTSIDE")
                .file("evil/escaped", b"x")
                .finish(),
            "evil/escaped",
        ),
        (
            "symlink-rel",
            Tar::default()
                .symlink("evil", "../..")
                .file("evil/escaped", b"x")
                .finish(),
            "evil/escaped",
        ),
        (
            "symlink-chain",
            Tar::default()
                .symlink("a", "b")
                .symlink("b", "c")
                .symlink("c", "../../..")
                .file("a/escaped", b"x")
                .finish(),
            "a/escaped",
        ),
        (
            "hardlink-dotdot",
            Tar::default().hardlink("h", "../outside-file").finish(),
            "h",
        ),
        (
            "hardlink-symlink",
            Tar::default()
                .symlink("evil", "/OUTSIDE")
                .hardlink("h", "evil/outside-file")
                .finish(),
            "h",
        ),
        (
            "whiteout-symlink",
            Tar::default()
                .symlink("evil", "/OUTSIDE")
                .file("evil/.wh.outside-file", b"")
                .finish(),
            "evil/.wh.outside-file",
        ),
    ];
    for (what, bytes, entry) in cases {
        let t = tmpdir(what);
        let outside = t.join("OUTSIDE");
        std::fs::create_dir_all(&outside).expect("mkdir");
        std::fs::write(outside.join("outside-file"), b"secret").expect("write");
        std::fs::write(t.join("outside-file"), b"secret").expect("write");
        // The root is two levels down so that "../.." would land in `t`.
        let root = t.join("root/inner");
        std::fs::create_dir_all(&root).expect("mkdir");
        for w in [Whiteouts::Remove, Whiteouts::Overlay] {
            let e = apply(&bytes, &root, w).err().map(|e| e.to_string());
            let msg = e.unwrap_or_else(|| panic!("{what}: hostile layer accepted"));
            assert!(msg.contains(&format!("{entry:?}")), "{what}: {msg}");
            assert!(
                !t.join("escaped").exists() && !t.join("root/escaped").exists(),
                "{what}: wrote outside"
            );
            assert!(
                !Path::new("/escaped").exists() && !outside.join("escaped").exists(),
                "{what}: wrote outside"
            );
            assert_eq!(
                std::fs::read(outside.join("outside-file")).expect("intact"),
                b"secret",
                "{what}"
            );
            assert_eq!(
                std::fs::read(t.join("outside-file")).expect("intact"),
                b"secret",
                "{what}"
            );
            let _ = std::fs::remove_dir_all(&root);
            std::fs::create_dir_all(&root).expect("mkdir");
        }
        let _ = std::fs::remove_dir_all(t);
    }
}

#[test]
fn entry_cap() {
    let t = tmpdir("cap");
    let bytes = Tar::default()
        .file("a", b"")
        .file("b", b"")
        .file("c", b"")
        .finish();
    let limits = Limits {
        max_entries: 2,
        ..Limits::default()
    };
    let e = apply_layer(&bytes[..], &t.join("root"), Whiteouts::Remove, &limits)
        .err()
        .map(|e| e.to_string());
    assert!(
        e.as_deref()
            .is_some_and(|m| m.contains("\"c\"") && m.contains("more than 2 entries")),
        "{e:?}"
    );
    let limits = Limits {
        max_bytes: 3,
        ..Limits::default()
    };
    let bytes = Tar::default().file("big", b"12345").finish();
    let e = apply_layer(&bytes[..], &t.join("root"), Whiteouts::Remove, &limits)
        .err()
        .map(|e| e.to_string());
    assert!(e.as_deref().is_some_and(|m| m.contains("\"big\"")), "{e:?}");
    let _ = std::fs::remove_dir_all(t);
}

/// A GNU sparse entry declaring 4 GiB in one stored byte is refused for its declared size
/// before anything of it is written.
#[test]
fn sparse_entry_counts_its_declared_size_before_writing() {
    let t = tmpdir("sparse");
    let real: u64 = 4 << 30;
    let mut h = tar::Header::new_gnu();
    let octal = |f: &mut [u8], v: u64| {
        let s = format!("{v:0w$o}\0", w = f.len() - 1);
        f.copy_from_slice(s.as_bytes());
    };
    {
        let g = h.as_gnu_mut().expect("gnu");
        g.name[..6].copy_from_slice(b"sparse");
        octal(&mut g.sparse[0].offset, real - 1);
        octal(&mut g.sparse[0].numbytes, 1);
        octal(&mut g.realsize, real);
    }
    h.set_entry_type(tar::EntryType::GNUSparse);
    h.set_size(1);
    h.set_mode(0o644);
    h.set_cksum();
    let mut bytes = h.as_bytes().to_vec();
    bytes.extend_from_slice(&[1u8; 1]);
    bytes.resize(512 * 2 + 1024, 0);
    let e = apply(&bytes, &t.join("root"), Whiteouts::Overlay)
        .expect_err("a 4 GiB sparse file in one byte");
    let msg = e.to_string();
    assert!(
        msg.contains("\"sparse\"") && msg.contains("sparse file declares"),
        "{msg}"
    );
    assert!(!t.join("root/sparse").exists(), "written before the check");
}

/// Past the floor, a layer expanding more than the ratio is refused while it streams; the
/// image's remaining room caps a layer too.
#[test]
fn expansion_ratio_and_image_room() {
    use std::io::Write as _;
    let t = tmpdir("ratio");
    let raw = Tar::default().file("zeros", &vec![0u8; 8 << 20]).finish();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&raw).expect("gzip");
    let gz = gz.finish().expect("gzip");
    let limits = Limits {
        ratio_floor: 1 << 20,
        ..Limits::default()
    };
    let e =
        apply_layer(&gz[..], &t.join("root"), Whiteouts::Remove, &limits).expect_err("a gzip bomb");
    let msg = e.to_string();
    assert!(
        msg.contains("\"zeros\"") && msg.contains("expands more than 100:1"),
        "{msg}"
    );
    // The same layer under the default floor is fine (real layers of zeros exist).
    let t2 = tmpdir("ratio-ok");
    apply(&gz, &t2.join("root"), Whiteouts::Remove).expect("8 MiB of zeros");
    let t3 = tmpdir("room");
    let limits = Limits {
        image_room: 1 << 20,
        ..Limits::default()
    };
    let e = apply_layer(&raw[..], &t3.join("root"), Whiteouts::Remove, &limits)
        .expect_err("over the image's room");
    assert!(e.to_string().contains("BERTH_MAX_IMAGE_SIZE"), "{e}");
    for d in [t, t2, t3] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn sizes_parse() {
    assert_eq!(parse_size("512M"), Some(512 << 20));
    assert_eq!(parse_size("16G"), Some(16 << 30));
    assert_eq!(parse_size("1GiB"), Some(1 << 30));
    assert_eq!(parse_size("100"), Some(100));
    for bad in ["", "G", "-1", "1.5G", "1X", "99999999999999999999T"] {
        assert_eq!(parse_size(bad), None, "{bad:?}");
    }
}
