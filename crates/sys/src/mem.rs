//! Giving memory back after start-up: for a long-lived, mostly idle process (a container's
//! monitor) whose resident set is dominated by code it ran once.

use nix::errno::Errno;

/// Unmaps, from this process's page tables, the resident pages of its executable's
/// read-only mappings (code and read-only data of `/proc/self/exe`) that were never
/// written: they stay in the page cache and fault back in when used again, so what stays
/// resident is only what is used from now on. A mapping with any anonymous (copy-on-write)
/// page — relocated read-only data (RELRO), anything written — is left alone, so nothing
/// is lost. Also returns the heap's free top to the system (`malloc_trim`). Returns the
/// bytes of mappings advised.
pub fn shed_startup_pages() -> nix::Result<usize> {
    let exe = std::fs::read_link("/proc/self/exe").map_err(|_| Errno::ENOENT)?;
    let smaps = std::fs::read_to_string("/proc/self/smaps").map_err(|_| Errno::EIO)?;
    // (start, end, eligible so far) of the mapping whose fields are being read.
    let mut cur: Option<(usize, usize, bool)> = None;
    let mut ranges = Vec::new();
    for line in smaps.lines() {
        let mut f = line.split_whitespace();
        let Some(first) = f.next() else { continue };
        if let Some((a, b)) = first.split_once('-').filter(|_| !first.ends_with(':')) {
            // A new mapping: start-end perms offset dev inode path
            if let Some((s, e, true)) = cur.take() {
                ranges.push((s, e));
            }
            let perms = f.next().unwrap_or("");
            let path = f.nth(3).unwrap_or("");
            let ours = matches!(perms, "r-xp" | "r--p") && std::path::Path::new(path) == exe;
            cur = match (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) {
                (Ok(s), Ok(e)) if e > s => Some((s, e, ours)),
                _ => None,
            };
        } else if first == "Anonymous:" && f.next() != Some("0") {
            if let Some(c) = cur.as_mut() {
                c.2 = false;
            }
        }
    }
    if let Some((s, e, true)) = cur {
        ranges.push((s, e));
    }
    let mut advised = 0usize;
    for (start, end) in ranges {
        // SAFETY: MADV_DONTNEED on a private, read-only file mapping of our own executable
        // with no anonymous page (nothing in it was ever written) only drops page-table
        // entries; the next access re-reads the same bytes from the page cache. The range
        // comes from /proc/self/smaps, so it is mapped.
        let r =
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
        Errno::result(r)?;
        advised += end - start;
    }
    // SAFETY: malloc_trim only releases free memory at the heap's top and in free chunks;
    // it takes no pointers.
    unsafe { libc::malloc_trim(0) };
    Ok(advised)
}

#[cfg(test)]
mod tests {
    #[test]
    fn shedding_keeps_the_process_working() {
        let advised = super::shed_startup_pages().expect("shed");
        assert!(advised > 0, "no code mapping of the test binary was found");
        // Code, string constants and relocated data are all still there.
        let v: Vec<String> = (0..1000).map(|i| format!("item {i}")).collect();
        assert_eq!(v[999], "item 999");
        assert_eq!(format!("{:?}", Some(3)), "Some(3)");
    }
}
