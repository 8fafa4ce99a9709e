#!/usr/bin/env bash
# Builds berth-agent (crates/agent), the init and guest agent of `berth vm image` disks,
# as a static executable: it runs as PID 1 of root filesystems that may have no C library.
# The musl target is not required: the gnu target links glibc statically with
# `-C target-feature=+crt-static` (static-pie). Its own target directory keeps these
# flags from invalidating the workspace's normal build.
# Prints the binary's path; `berth vm image` takes it as --agent or $BERTH_AGENT.
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/agent
cargo rustc --quiet --release -p berth-agent --bin berth-agent --target-dir "$out" \
  -- -C target-feature=+crt-static >&2
bin="$PWD/$out/release/berth-agent"
if readelf -l "$bin" | grep -q 'Requesting program interpreter'; then
  echo "build-agent.sh: $bin is dynamically linked" >&2
  exit 1
fi
echo "$bin"
