//! Container logs in Docker's json-file format: one JSON object per line of output,
//! `{"log":"…\n","stream":"stdout|stderr","time":"RFC 3339 with nanoseconds"}`, appended
//! by the monitor (read, rotated and followed by logfiles.rs).

use serde::{Deserialize, Serialize};

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
