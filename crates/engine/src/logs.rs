//! Container logs in Docker's json-file format: one JSON object per line of output,
//! `{"log":"…\n","stream":"stdout|stderr","time":"RFC 3339 with nanoseconds"}`, appended
//! by the monitor; `logs -f` follows the file as it grows.

use crate::error::{io, Result};
use serde::{Deserialize, Serialize};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

/// A line longer than this is split (Docker's 16 KiB).
pub const MAX_LINE: usize = 16 * 1024;

/// One log entry.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    pub log: String,
    pub stream: String,
    pub time: String,
}

/// Turns one stream's bytes into entries: complete lines as they arrive, the rest at
/// [`flush`](LineSplitter::flush).
#[derive(Debug, Default)]
pub struct LineSplitter {
    buf: Vec<u8>,
}

impl LineSplitter {
    /// Feeds bytes; calls `emit` with each complete line (newline included).
    pub fn feed(&mut self, data: &[u8], mut emit: impl FnMut(&[u8])) {
        self.buf.extend_from_slice(data);
        let mut start = 0;
        while let Some(pos) = self.buf[start..].iter().position(|b| *b == b'\n') {
            let end = start + pos + 1;
            for chunk in self.buf[start..end].chunks(MAX_LINE) {
                emit(chunk);
            }
            start = end;
        }
        self.buf.drain(..start);
        while self.buf.len() >= MAX_LINE {
            let rest = self.buf.split_off(MAX_LINE);
            emit(&self.buf);
            self.buf = rest;
        }
    }

    /// What is left without a newline.
    pub fn flush(&mut self, mut emit: impl FnMut(&[u8])) {
        if !self.buf.is_empty() {
            emit(&self.buf);
            self.buf.clear();
        }
    }
}

/// The JSON line (newline included) of `line` from `stream`.
pub fn encode(line: &[u8], stream: &str, time: &str) -> Vec<u8> {
    let e = Entry {
        log: String::from_utf8_lossy(line).into_owned(),
        stream: stream.to_string(),
        time: time.to_string(),
    };
    let mut v = serde_json::to_vec(&e).unwrap_or_default();
    v.push(b'\n');
    v
}

/// What `logs` prints.
#[derive(Clone, Debug, Default)]
pub struct ReadOpts {
    /// Only the last N lines of what is there now.
    pub tail: Option<usize>,
    /// Each line prefixed with its time.
    pub timestamps: bool,
    /// Keep printing what is appended, until `running()` says the container ended.
    pub follow: bool,
}

fn print(e: &Entry, o: &ReadOpts, out: &mut dyn Write, err: &mut dyn Write) -> std::io::Result<()> {
    let w: &mut dyn Write = if e.stream == "stderr" { err } else { out };
    if o.timestamps {
        write!(w, "{} ", e.time)?;
    }
    w.write_all(e.log.as_bytes())?;
    w.flush()
}

/// Prints the log at `path` (a missing file is an empty log); with `follow`, keeps going
/// while `running()` is true. A malformed line (a torn write) is skipped.
pub fn read(
    path: &Path,
    o: &ReadOpts,
    mut running: impl FnMut() -> bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<()> {
    let mut f = loop {
        match std::fs::File::open(path) {
            Ok(f) => break f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !o.follow || !running() {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(io(format!("open {}", path.display()))(e)),
        }
    };
    let mut pending = Vec::new();
    let mut first = true;
    let mut ended = false;
    loop {
        let mut chunk = Vec::new();
        f.read_to_end(&mut chunk)
            .map_err(io(format!("read {}", path.display())))?;
        pending.extend_from_slice(&chunk);
        let cut = pending
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |p| p + 1);
        let complete: Vec<u8> = pending.drain(..cut).collect();
        let mut entries: Vec<Entry> = complete
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .filter_map(|l| serde_json::from_slice(l).ok())
            .collect();
        if first {
            if let Some(n) = o.tail {
                let skip = entries.len().saturating_sub(n);
                entries.drain(..skip);
            }
            first = false;
        }
        for e in &entries {
            if print(e, o, out, err).is_err() {
                return Ok(()); // the reader went away
            }
        }
        if !o.follow || ended {
            return Ok(());
        }
        if chunk.is_empty() {
            // One more read after the container ended: what its monitor wrote last.
            ended = !running();
            if !ended {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        // A rotated or truncated file starts again from its beginning.
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let pos = f.stream_position().unwrap_or(0);
        if len < pos {
            let _ = f.seek(SeekFrom::Start(0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_and_long_ones() {
        let mut s = LineSplitter::default();
        let mut got: Vec<Vec<u8>> = Vec::new();
        s.feed(b"a\nb", |l| got.push(l.to_vec()));
        s.feed(b"c\n", |l| got.push(l.to_vec()));
        s.feed(&vec![b'x'; MAX_LINE + 5], |l| got.push(l.to_vec()));
        s.flush(|l| got.push(l.to_vec()));
        assert_eq!(got[0], b"a\n");
        assert_eq!(got[1], b"bc\n");
        assert_eq!(got[2].len(), MAX_LINE);
        assert_eq!(got[3].len(), 5);
    }

    #[test]
    fn encodes_docker_json_file() {
        let l = encode(
            b"hi \"there\"\n",
            "stdout",
            "2024-01-01T00:00:00.000000001Z",
        );
        let v: serde_json::Value = serde_json::from_slice(&l).expect("json");
        assert_eq!(v["log"], "hi \"there\"\n");
        assert_eq!(v["stream"], "stdout");
        assert_eq!(l.last(), Some(&b'\n'));
    }
}
