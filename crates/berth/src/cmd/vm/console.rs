//! `berth vm console NAME`: print a detached VM's console and follow it until the VM stops.

use anyhow::{bail, Result};
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;
use vmm::state;

pub fn run(root: &Path, name: &str) -> Result<()> {
    let entry = state::find(root, name)?;
    let Some(log) = entry.record.as_ref().and_then(|r| r.console.clone()) else {
        bail!("vm {name}: runs in the foreground; its console is that terminal");
    };
    let mut file = std::fs::File::open(&log)?;
    let mut out = std::io::stdout();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = file.read(&mut buf)?;
        if n > 0 {
            out.write_all(&buf[..n])?;
            out.flush()?;
            continue;
        }
        if !entry.alive() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
