//! berth's container networks, as a library the engine (and later pods and functions)
//! calls. Synchronous, no async runtime: every kernel object is made by a netlink message
//! built here ([`nl`]) — links, addresses and routes over rtnetlink ([`link`]), NAT, port
//! publishing and isolation in berth's own nftables table ([`nft`]) — never by spawning
//! `ip`, `nft` or `iptables`.
//!
//! What is kept where (see the engine's network.rs): networks, attachments (address, MAC)
//! and published ports are rows of the engine's database; a container's network namespace
//! is a bind-mounted nsfs file under the run root ([`netns`]), made before the container
//! starts and given to the runtime by path (runtime-spec `config-linux.md` "Namespaces":
//! `path`).
#![forbid(unsafe_code)]

pub mod dns;
pub mod files;
pub mod ipam;
pub mod link;
pub mod netns;
pub mod nft;
pub mod nl;
pub mod ports;

/// The errors of network setup.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input from a user: one line that names what was wrong.
    #[error("{0}")]
    Invalid(String),
    /// A kernel request that failed (`what` names the object).
    #[error("{what}: {source}")]
    Kernel {
        what: String,
        #[source]
        source: nix::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn kernel(what: impl Into<String>) -> impl FnOnce(nix::Error) -> Error {
    let what = what.into();
    move |source| Error::Kernel { what, source }
}

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// Writes `value` to `/proc/sys/<key>` (dots as slashes) in this thread's network namespace.
/// Written only when it differs (a read is cheaper than a write's side effects).
pub fn sysctl(key: &str, value: &str) -> Result<()> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    if std::fs::read_to_string(&path).is_ok_and(|v| v.trim() == value) {
        return Ok(());
    }
    std::fs::write(&path, value).map_err(io(format!("write {path}")))
}
