#!/usr/bin/env bash
# berth's main job as it stands: build berth, build the example image from
# examples/hello/Containerfile and run it; then run a bare busybox bundle with
# berth-runtime. Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo build --release --workspace
root=$(mktemp -d /tmp/berth-demo.XXXXXX)
trap 'rm -rf "$root"' EXIT
berth() { ./target/release/berth --root "$root/store" --runroot "$root/run" "$@"; }
# The example's base stage is FROM scratch + COPY busybox: put busybox in the context.
cp /bin/busybox examples/hello/busybox
berth build -t hello examples/hello
berth run --rm hello
# The runtime on its own: a bundle made by `berth bundle`.
./target/release/berth bundle "$root/bundle" -- sh -c 'echo "hello from berth-runtime: pid $$ on $(hostname)"'
./target/release/berth-runtime run --bundle "$root/bundle" "demo-$$"
