use super::*;

fn tmp(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!(
        "berth-content-{name}-{}-{}",
        std::process::id(),
        INGEST_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&p);
    p
}

fn ingest_files(s: &Store) -> usize {
    fs::read_dir(s.root().join("ingest")).map_or(0, |d| d.count())
}

#[test]
fn write_read_roundtrip() -> Result<()> {
    let root = tmp("roundtrip");
    let s = Store::open(&root)?;
    let d = s.write(b"hello", None)?;
    assert_eq!(d, Digest::sha256(b"hello"));
    assert!(s.exists(&d));
    assert_eq!(s.size(&d)?, 5);
    assert_eq!(s.read(&d, 100)?, b"hello");
    assert!(matches!(s.read(&d, 2), Err(Error::TooLarge { .. })));
    s.verify(&d)?;
    assert_eq!(s.list()?, vec![d.clone()]);
    assert_eq!(ingest_files(&s), 0);
    s.delete(&d)?;
    assert!(!s.exists(&d));
    assert!(matches!(s.size(&d), Err(Error::NotFound(_))));
    let _ = fs::remove_dir_all(root);
    Ok(())
}

#[test]
fn sha512_blobs() -> Result<()> {
    let root = tmp("sha512");
    let s = Store::open(&root)?;
    let want = Digest::of(Algorithm::Sha512, b"abc");
    let d = s.write(b"abc", Some(&want))?;
    assert_eq!(d, want);
    assert!(s.path(&d).starts_with(root.join("blobs/sha512")));
    s.verify(&d)?;
    let _ = fs::remove_dir_all(root);
    Ok(())
}

#[test]
fn mismatch_is_never_visible() -> Result<()> {
    let root = tmp("mismatch");
    let s = Store::open(&root)?;
    let claimed = Digest::sha256(b"good");
    let e = s.write(b"evil", Some(&claimed));
    match e {
        Err(Error::Mismatch { expected, actual }) => {
            assert_eq!(expected, claimed);
            assert_eq!(actual, Digest::sha256(b"evil"));
        }
        other => panic!("expected a mismatch, got {other:?}"),
    }
    assert!(!s.exists(&claimed));
    assert!(!s.exists(&Digest::sha256(b"evil")));
    assert!(s.list()?.is_empty());
    assert_eq!(ingest_files(&s), 0);
    let _ = fs::remove_dir_all(root);
    Ok(())
}

#[test]
fn uncommitted_ingestion_leaves_nothing() -> Result<()> {
    let root = tmp("drop");
    let s = Store::open(&root)?;
    {
        let mut w = s.ingest(Algorithm::Sha256)?;
        w.write_all(b"partial").map_err(io_err(&root))?;
        assert_eq!(ingest_files(&s), 1);
    }
    assert_eq!(ingest_files(&s), 0);
    assert!(s.list()?.is_empty());
    let _ = fs::remove_dir_all(root);
    Ok(())
}

#[test]
fn concurrent_writers_of_one_blob() -> Result<()> {
    let root = tmp("concurrent");
    let s = Store::open(&root)?;
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let want = Digest::sha256(&data);
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            let data = data.clone();
            let want = want.clone();
            std::thread::spawn(move || -> Result<Digest> {
                let mut w = s.ingest(Algorithm::Sha256)?;
                for chunk in data.chunks(4096) {
                    w.write_all(chunk).map_err(io_err(Path::new("ingest")))?;
                }
                w.commit(Some(&want))
            })
        })
        .collect();
    for h in handles {
        let d = h.join().map_err(|_| Error::NotFound(want.clone()))??;
        assert_eq!(d, want);
    }
    s.verify(&want)?;
    assert_eq!(s.list()?, vec![want]);
    assert_eq!(ingest_files(&s), 0);
    let _ = fs::remove_dir_all(root);
    Ok(())
}

#[test]
fn gc_removes_unreferenced_and_stale() -> Result<()> {
    let root = tmp("gc");
    let s = Store::open(&root)?;
    let a = s.write(b"a", None)?;
    let b = s.write(b"b", None)?;
    // A temporary file of a process that no longer exists (pid 0 never is a process here).
    fs::write(root.join("ingest/999999999-0-0"), b"junk").map_err(io_err(&root))?;
    let keep: HashSet<Digest> = [a.clone()].into_iter().collect();
    let r = s.gc(&keep)?;
    assert_eq!(r.removed, vec![b.clone()]);
    assert_eq!(r.stale_ingests, 1);
    assert!(s.exists(&a) && !s.exists(&b));
    let _ = fs::remove_dir_all(root);
    Ok(())
}

#[test]
fn copy_from_reader_verifies() -> Result<()> {
    let root = tmp("copy");
    let s = Store::open(&root)?;
    let want = Digest::sha256(b"stream");
    let d = s.copy_from(&mut &b"stream"[..], Some(&want))?;
    assert_eq!(d, want);
    assert!(s.copy_from(&mut &b"other"[..], Some(&want)).is_err());
    assert!(s.exists(&want));
    let bad = Digest::sha256(b"x");
    assert!(s.copy_from(&mut &b"y"[..], Some(&bad)).is_err());
    assert!(!s.exists(&bad));
    let _ = fs::remove_dir_all(root);
    Ok(())
}
