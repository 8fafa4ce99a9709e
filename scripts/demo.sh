#!/usr/bin/env bash
# berth's main job as it stands: build berth, make a busybox bundle, run it with
# berth-runtime. Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo build --release --workspace
dir=$(mktemp -d /tmp/berth-demo.XXXXXX)
rmdir "$dir"
./target/release/berth bundle "$dir" -- sh -c 'echo "hello from berth: pid $$ on $(hostname)"'
./target/release/berth-runtime run --bundle "$dir" "demo-$$"
rm -rf "$dir"
