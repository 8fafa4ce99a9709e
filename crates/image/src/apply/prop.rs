//! Property tests of layer apply: hostile tar streams (random entry names, types, link
//! targets, whiteouts, garbage bytes) never panic, never write outside the target, and
//! every refusal is an error naming the entry (or the stream).

use super::tests::{tmpdir, Tar};
use super::*;
use proptest::prelude::*;
use std::collections::BTreeSet;

/// Path components, hostile ones included.
fn component() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_string()),
        Just("b".to_string()),
        Just("..".to_string()),
        Just(".".to_string()),
        Just(String::new()),
        Just(".wh.a".to_string()),
        Just(".wh..wh..opq".to_string()),
        Just(".wh.".to_string()),
        Just(".wh...".to_string()),
        Just("l".to_string()),
        "[a-z.]{1,3}",
    ]
}

/// An entry path (at most 99 bytes: the name field of a header).
fn path() -> impl Strategy<Value = String> {
    (any::<bool>(), proptest::collection::vec(component(), 1..5)).prop_map(|(abs, cs)| {
        let mut p = cs.join("/");
        if abs {
            p.insert(0, '/');
        }
        p.truncate(99);
        p
    })
}

/// Link targets: inside, climbing out, absolute (the outside directory is `../outside`
/// from the target root).
fn target() -> impl Strategy<Value = String> {
    prop_oneof![
        path(),
        Just("../outside".to_string()),
        Just("../outside/secret".to_string()),
        Just("../../../../../../../../tmp".to_string()),
        Just("/".to_string()),
        Just("/etc/passwd".to_string()),
    ]
    .prop_map(|mut t| {
        t.truncate(99);
        t
    })
}

fn kind() -> impl Strategy<Value = tar::EntryType> {
    use tar::EntryType as T;
    prop_oneof![
        Just(T::Regular),
        Just(T::Directory),
        Just(T::Symlink),
        Just(T::Link),
        Just(T::Fifo),
        Just(T::Char),
        Just(T::Block),
        Just(T::Continuous),
        Just(T::GNUSparse),
        Just(T::XHeader),
        any::<u8>().prop_map(T::new),
    ]
}

#[derive(Debug, Clone)]
struct Entry {
    name: String,
    kind: tar::EntryType,
    link: String,
    data: Vec<u8>,
    mode: u32,
}

fn entry() -> impl Strategy<Value = Entry> {
    (
        path(),
        kind(),
        target(),
        proptest::collection::vec(any::<u8>(), 0..40),
        0u32..0o10000,
    )
        .prop_map(|(name, kind, link, data, mode)| Entry {
            name,
            kind,
            link,
            data,
            mode,
        })
}

/// Every path under `dir` (not following symlinks).
fn walk(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p.clone());
            }
            out.insert(p);
        }
    }
    out
}

fn check(bytes: &[u8], w: Whiteouts) -> Result<(), TestCaseError> {
    let t = tmpdir("prop");
    let outside = t.join("outside");
    std::fs::create_dir_all(&outside).expect("mkdir outside");
    std::fs::write(outside.join("secret"), "secret").expect("write secret");
    let before = walk(&outside);
    let result = apply_layer(bytes, &t.join("root"), w, &Limits::default());
    let after = walk(&outside);
    let secret = std::fs::read_to_string(outside.join("secret"));
    let nlink = std::fs::metadata(outside.join("secret")).map(|m| {
        use std::os::unix::fs::MetadataExt;
        m.nlink()
    });
    // Only root and outside/ exist beside each other.
    let top: BTreeSet<PathBuf> = std::fs::read_dir(&t)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    let _ = std::fs::remove_dir_all(&t);
    prop_assert_eq!(before, after, "something was written outside the target");
    prop_assert_eq!(secret.ok(), Some("secret".to_string()));
    prop_assert_eq!(nlink.ok(), Some(1), "a hardlink to a file outside");
    prop_assert_eq!(top, BTreeSet::from([t.join("outside"), t.join("root")]));
    if let Err(e) = result {
        let msg = e.to_string();
        prop_assert!(!msg.is_empty());
        match &e {
            crate::Error::Entry { entry, reason } => {
                prop_assert!(!entry.is_empty() && !reason.is_empty(), "{msg}")
            }
            other => prop_assert!(false, "not an entry error: {other:?}"),
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    #[test]
    fn hostile_entries_stay_inside(entries in proptest::collection::vec(entry(), 1..8), overlay in any::<bool>()) {
        let mut t = Tar::default();
        for e in &entries {
            t.raw(&e.name, e.kind, &e.link, &e.data, e.mode);
        }
        let w = if overlay { Whiteouts::Overlay } else { Whiteouts::Remove };
        check(&t.finish(), w)?;
    }

    #[test]
    fn garbage_streams_are_refused_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        check(&bytes, Whiteouts::Remove)?;
    }

    #[test]
    fn corrupted_headers_are_refused_cleanly(
        entries in proptest::collection::vec(entry(), 1..4),
        flips in proptest::collection::vec((0usize..2048, any::<u8>()), 1..6),
    ) {
        let mut t = Tar::default();
        for e in &entries {
            t.raw(&e.name, e.kind, &e.link, &e.data, e.mode);
        }
        let mut bytes = t.finish();
        for (at, v) in flips {
            let n = bytes.len();
            bytes[at % n] = v;
        }
        check(&bytes, Whiteouts::Overlay)?;
    }
}
