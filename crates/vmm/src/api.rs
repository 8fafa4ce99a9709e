//! The VMM's public interface: one command enum ([`VmmAction`]) served as JSON lines on a
//! unix socket per VM, and the client the `berth vm` commands use.

use event_manager::{EventOps, Events, MutEventSubscriber};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;
use vmm_sys_util::epoll::EventSet;

/// Everything a VMM can be asked to do.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum VmmAction {
    /// Name, state and size of the VM.
    Describe,
    /// Stop running the vCPUs.
    Pause,
    /// Run the vCPUs again.
    Resume,
    /// Stop the VM and its VMM.
    Stop,
    /// Write a snapshot (vCPUs, devices, memory) to a file; the VM keeps its run state.
    CreateSnapshot { path: PathBuf },
}

/// What a VMM answers.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum VmmData {
    Empty,
    Info(VmInfo),
}

/// A VM as `berth vm ls` shows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct VmInfo {
    pub name: String,
    pub state: String,
    pub cpus: u8,
    pub memory_mib: u64,
    pub pid: u32,
}

/// A request's result on the wire.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ApiResponse {
    Ok(VmmData),
    Err(String),
}

/// Talking to a VMM failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// cannot reach the VMM at {path}: {source}
    #[error("cannot reach the VMM at {path}: {source}")]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    /// the VMM at {path} did not answer: {source}
    #[error("the VMM at {path} did not answer: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// the VMM at {path} sent a malformed answer
    #[error("the VMM at {path} sent a malformed answer")]
    Malformed { path: PathBuf },
    /// {0}
    #[error("{0}")]
    Vmm(String),
    /// cannot listen on {path}: {source}
    #[error("cannot listen on {path}: {source}")]
    Listen {
        path: PathBuf,
        source: std::io::Error,
    },
}

const MAX_REQUEST: u64 = 64 << 10;

/// Sends `action` to the VMM listening on `socket` and waits for its answer.
pub fn request(socket: &Path, action: &VmmAction, timeout: Duration) -> Result<VmmData, ApiError> {
    let io = |source| ApiError::Io {
        path: socket.to_path_buf(),
        source,
    };
    let mut stream = UnixStream::connect(socket).map_err(|source| ApiError::Connect {
        path: socket.to_path_buf(),
        source,
    })?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    let mut line = serde_json::to_vec(action).map_err(|e| io(std::io::Error::other(e)))?;
    line.push(b'\n');
    stream.write_all(&line).map_err(io)?;
    let mut answer = String::new();
    BufReader::new(stream.take(MAX_REQUEST))
        .read_line(&mut answer)
        .map_err(io)?;
    match serde_json::from_str(&answer) {
        Ok(ApiResponse::Ok(data)) => Ok(data),
        Ok(ApiResponse::Err(e)) => Err(ApiError::Vmm(e)),
        Err(_) => Err(ApiError::Malformed {
            path: socket.to_path_buf(),
        }),
    }
}

/// A request waiting for the VMM's answer.
pub struct Pending {
    stream: UnixStream,
    pub action: Result<VmmAction, String>,
}

impl Pending {
    /// Sends the answer (a client that went away is not an error).
    pub fn answer(mut self, response: ApiResponse) {
        if let Ok(mut line) = serde_json::to_vec(&response) {
            line.push(b'\n');
            let _ = self.stream.write_all(&line);
        }
    }
}

/// The API socket, as an event-loop subscriber that queues requests for the VMM.
pub struct ApiServer {
    listener: UnixListener,
    pub path: PathBuf,
    pub pending: Vec<Pending>,
}

impl ApiServer {
    /// Listens on `path`.
    pub fn bind(path: &Path) -> Result<ApiServer, ApiError> {
        let listen = |source| ApiError::Listen {
            path: path.to_path_buf(),
            source,
        };
        let listener = UnixListener::bind(path).map_err(listen)?;
        listener.set_nonblocking(true).map_err(listen)?;
        Ok(ApiServer {
            listener,
            path: path.to_path_buf(),
            pending: Vec::new(),
        })
    }

    fn read_request(stream: &UnixStream) -> Result<VmmAction, String> {
        stream
            .set_nonblocking(false)
            .and_then(|_| stream.set_read_timeout(Some(Duration::from_secs(2))))
            .map_err(|e| e.to_string())?;
        let mut line = String::new();
        BufReader::new(stream.take(MAX_REQUEST))
            .read_line(&mut line)
            .map_err(|e| format!("reading the request: {e}"))?;
        serde_json::from_str(&line).map_err(|e| format!("malformed request: {e}"))
    }
}

impl MutEventSubscriber for ApiServer {
    fn process(&mut self, _events: Events, _ops: &mut EventOps) {
        while let Ok((stream, _)) = self.listener.accept() {
            let action = ApiServer::read_request(&stream);
            self.pending.push(Pending { stream, action });
        }
    }

    fn init(&mut self, ops: &mut EventOps) {
        let _ = ops.add(Events::new(&self.listener, EventSet::IN));
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
