//! `berth cp CONTAINER:SRC DEST`, `berth cp SRC CONTAINER:DEST`: files and directories
//! between a container and the host, resolved inside the container's root
//! (engine::cp).

use crate::Globals;
use anyhow::{bail, Result};
use std::path::Path;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// `CONTAINER:PATH` or a host path.
    src: String,
    /// `CONTAINER:PATH` or a host path.
    dest: String,
}

/// `CONTAINER:PATH` → Some((container, path)); a host path (absolute, relative with a
/// `/` before any `:`, or `.`-led) → None.
fn container_path(arg: &str) -> Option<(&str, &str)> {
    if arg.starts_with('/') || arg.starts_with('.') {
        return None;
    }
    let (c, p) = arg.split_once(':')?;
    if c.is_empty() || c.contains('/') {
        return None;
    }
    Some((c, p))
}

pub fn run(g: &Globals, a: Args) -> Result<()> {
    let e = g.engine()?;
    match (container_path(&a.src), container_path(&a.dest)) {
        (Some((c, p)), None) => {
            if p.is_empty() {
                bail!("cp: no path in the container after {c:?}:");
            }
            e.copy_from(c, Path::new(p), Path::new(&a.dest))?
        }
        (None, Some((c, p))) => {
            if p.is_empty() {
                bail!("cp: no path in the container after {c:?}:");
            }
            e.copy_to(Path::new(&a.src), c, Path::new(p))?
        }
        (Some(_), Some(_)) => bail!("cp: copying between containers is not supported"),
        (None, None) => bail!("cp: one of the paths must be CONTAINER:PATH"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(container_path("web:/etc"), Some(("web", "/etc")));
        assert_eq!(container_path("/tmp/a:b"), None);
        assert_eq!(container_path("./a:b"), None);
        assert_eq!(container_path("dir/a:b"), None);
        assert_eq!(container_path("file"), None);
    }
}
