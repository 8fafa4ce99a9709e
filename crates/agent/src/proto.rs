//! The wire protocol: frames of a 4-byte big-endian length and that many bytes of JSON, one
//! [`Request`] from the host answered by one [`Response`] from the agent.
//!
//! ```text
//! host → agent  {"op":"ping"}                                → {"result":"pong",…}
//!               {"op":"run_script","script":"…","timeout_secs":60}
//!                                                            → {"result":"script","exit_code":0,"output":"…",…}
//!               {"op":"start"}                               → {"result":"started","pid":42}
//!               {"op":"status"}                              → {"result":"status","running":true,…}
//!               {"op":"shutdown"}                            → {"result":"shutting_down"}
//! anything else                                              → {"result":"error","message":"bad request: …"}
//! ```

use serde::{Deserialize, Serialize};
use std::io::{self, Read, Write};

/// The protocol version the agent reports in [`Response::Pong`].
pub const VERSION: u32 = 1;
/// The largest frame either side accepts.
pub const MAX_FRAME: usize = 16 << 20;

/// What the host asks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Is the agent there?
    Ping,
    /// Run `script` with `/bin/sh` (stdin is the script; stdout and stderr are collected).
    RunScript {
        script: String,
        /// Kill the script's process group after this long (default 600 s).
        #[serde(default)]
        timeout_secs: Option<u64>,
    },
    /// Start the image's entrypoint and command.
    Start,
    /// The workload's state.
    Status,
    /// Sync and power off.
    Shutdown,
}

/// What the agent answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    Pong {
        version: u32,
        hostname: String,
    },
    Script {
        /// The exit code, or `None` when a signal ended the shell.
        exit_code: Option<i32>,
        signal: Option<i32>,
        /// stdout and stderr, interleaved (lossy UTF-8), at most 1 MiB of it.
        output: String,
        truncated: bool,
        timed_out: bool,
    },
    Started {
        pid: u32,
    },
    Status {
        /// No workload was started yet.
        started: bool,
        running: bool,
        pid: Option<u32>,
        exit_code: Option<i32>,
        signal: Option<i32>,
    },
    ShuttingDown,
    Error {
        message: String,
    },
}

/// Reads one frame; `Ok(None)` at a clean end of stream (before a frame's first byte).
pub fn read_frame(r: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes: more than {MAX_FRAME}"),
        ));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf)?;
    Ok(Some(buf))
}

/// Writes one frame.
pub fn write_frame(w: &mut impl Write, body: &[u8]) -> io::Result<()> {
    if body.len() > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("frame of {} bytes: more than {MAX_FRAME}", body.len()),
        ));
    }
    w.write_all(&(body.len() as u32).to_be_bytes())?;
    w.write_all(body)?;
    w.flush()
}

/// Sends `msg` as one JSON frame.
pub fn send<T: Serialize>(w: &mut impl Write, msg: &T) -> io::Result<()> {
    let body = serde_json::to_vec(msg).map_err(io::Error::other)?;
    write_frame(w, &body)
}

/// Receives one JSON frame as `T`; `Ok(None)` at a clean end of stream.
pub fn recv<T: for<'de> Deserialize<'de>>(r: &mut impl Read) -> io::Result<Option<T>> {
    let Some(body) = read_frame(r)? else {
        return Ok(None);
    };
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// One request and its response over `stream` (the host side).
pub fn call<S: Read + Write>(stream: &mut S, req: &Request) -> io::Result<Response> {
    send(stream, req)?;
    recv(stream)?.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the agent closed the connection",
        )
    })
}

/// A function invocation (`berth-agent --fn SOCKET`, the init of a stdio-mode function
/// instance): this frame, then one frame of the request body (the process's stdin). The
/// agent answers an [`Invoked`] frame, then a frame of stdout and one of stderr.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Invoke {
    /// The command (an absolute path or a name looked up in the agent's `PATH`).
    pub argv: Vec<String>,
    /// `NAME=VALUE` added to the agent's own environment.
    pub env: Vec<String>,
    /// Kill the process group after this long.
    pub timeout_ms: u64,
}

/// How an invocation ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invoked {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    /// stdout or stderr was longer than [`MAX_OUTPUT`] and was cut there.
    pub truncated: bool,
    /// The process could not be started (the reason).
    pub error: Option<String>,
}

/// The most of stdout (and of stderr) an invocation returns.
pub const MAX_OUTPUT: usize = MAX_FRAME - 4096;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_limits_hold() {
        let mut buf = Vec::new();
        send(
            &mut buf,
            &Request::RunScript {
                script: "echo hi".into(),
                timeout_secs: None,
            },
        )
        .expect("send");
        assert_eq!(&buf[..4], &(buf.len() as u32 - 4).to_be_bytes());
        let mut r = &buf[..];
        let req: Request = recv(&mut r).expect("recv").expect("a frame");
        assert_eq!(
            req,
            Request::RunScript {
                script: "echo hi".into(),
                timeout_secs: None
            }
        );
        assert!(recv::<Request>(&mut r).expect("end").is_none());
        // A truncated frame, an oversized length.
        let mut short = &buf[..buf.len() - 1];
        assert!(recv::<Request>(&mut short).is_err());
        let huge = (MAX_FRAME as u32 + 1).to_be_bytes();
        let err = read_frame(&mut &huge[..]).expect_err("too large");
        assert!(err.to_string().contains("more than"), "{err}");
    }
}
