#!/usr/bin/env bash
# Build a busybox image (OCI layout, with umoci), push it to `berth registry serve` on
# loopback with `berth push`, pull it back with `berth pull`, unpack it into a bundle and
# run it with berth-runtime. As root, after `cargo build --workspace`.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-$PWD/target/debug}
work=$(mktemp -d /tmp/berth-registry-demo.XXXXXX)
export HOME=$work/home   # auth.json and the blob-location cache stay in the demo dir
reg_pid=
cleanup() { [ -n "$reg_pid" ] && kill "$reg_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
cd "$work"

# 1. Build: an OCI image layout with a static busybox as /bin/sh.
umoci init --layout img
umoci new --image img:v1
umoci unpack --image img:v1 build >/dev/null
mkdir -p build/rootfs/bin && cp /bin/busybox build/rootfs/bin/ && ln -s busybox build/rootfs/bin/sh
umoci repack --image img:v1 build
umoci config --image img:v1 --config.cmd /bin/sh --config.cmd -c --config.cmd 'echo hello from the registry'

# 2. A registry on loopback (port 0: the kernel picks; the first line says which).
mkfifo ready
"$bin/berth" registry serve --listen 127.0.0.1:0 --root "$work/registry" > ready &
reg_pid=$!
read -r _ _ addr < ready
echo "registry at $addr"

# 3. Push, pull back.
"$bin/berth" push --tls-verify=false --layout img:v1 "$addr/demo/hello:v1"
"$bin/berth" pull --tls-verify=false "$addr/demo/hello:v1" --layout pulled

# 4. Unpack and run.
umoci unpack --image pulled:v1 bundle >/dev/null
python3 - bundle/config.json <<'PY'
import json, sys
p = sys.argv[1]; c = json.load(open(p)); c["process"]["terminal"] = False
json.dump(c, open(p, "w"))
PY
"$bin/berth-runtime" --root "$work/state" run --bundle bundle "demo-$$"
