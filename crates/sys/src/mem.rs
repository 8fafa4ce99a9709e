//! Giving memory back after start-up: for a long-lived, mostly idle process (a container's
//! monitor) whose resident set is dominated by code it ran once.

use nix::errno::Errno;

/// Unmaps, from this process's page tables, the resident pages of its executable's code
/// (the `r-xp` mappings of `/proc/self/exe`): they stay in the page cache and fault back in
/// when run again, so what stays resident is only the code used from now on. Code is
/// never written (a PIE has no text relocations), so dropping it loses nothing; data and
/// relocated read-only data (RELRO) are not touched. Also returns the heap's free top to
/// the system (`malloc_trim`). Returns the bytes of code mappings advised.
pub fn shed_startup_pages() -> nix::Result<usize> {
    let exe = std::fs::read_link("/proc/self/exe").map_err(|_| Errno::ENOENT)?;
    let maps = std::fs::read_to_string("/proc/self/maps").map_err(|_| Errno::EIO)?;
    let mut advised = 0usize;
    for line in maps.lines() {
        // start-end perms offset dev inode path
        let mut f = line.split_whitespace();
        let (Some(range), Some(perms)) = (f.next(), f.next()) else {
            continue;
        };
        let path = f.nth(3).unwrap_or("");
        if perms != "r-xp" || std::path::Path::new(path) != exe {
            continue;
        }
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
        else {
            continue;
        };
        if end <= start {
            continue;
        }
        // SAFETY: MADV_DONTNEED on a private, never-written, read-only file mapping of our
        // own executable only drops page-table entries; the next access re-reads the same
        // bytes from the page cache. The range comes from /proc/self/maps, so it is mapped.
        let r = unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
        Errno::result(r)?;
        advised += end - start;
    }
    // SAFETY: malloc_trim only releases free memory at the heap's top and in free chunks;
    // it takes no pointers.
    unsafe { libc::malloc_trim(0) };
    Ok(advised)
}
