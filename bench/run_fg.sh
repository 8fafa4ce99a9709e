#!/usr/bin/env bash
# A foreground run three ways, with hyperfine in one run: `berth run --rm` (through the
# engine: create, start attached to the monitor, exit code, removal by the monitor),
# the direct path kept behind `BERTH_RUN_DIRECT=1` (berth runs berth-runtime itself, no
# monitor, no database row), and `podman run --rm`.
# As bench/engine.sh: a busybox-static image in each store; podman inside a private mount
# namespace without /sys/fs/cgroup/unified (crun 1.8 refuses hybrid hosts).
# Usage: bench/run_fg.sh [RUNS]   (as root; needs hyperfine, podman, crun, conmon)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
for t in hyperfine podman crun conmon tar; do command -v $t >/dev/null || { echo "missing $t: run scripts/install-deps.sh" >&2; exit 1; }; done
cargo build --release -q -p berth-runtime -p berth -p berth-engine
bin=$PWD/target/release
work=$(mktemp -d /tmp/berth-bench-runfg.XXXXXX)
export work runs bin
cat >"$work/inner.sh" <<'INNER'
set -euo pipefail
mount --make-rprivate /
umount /sys/fs/cgroup/unified 2>/dev/null || true
B="$bin/berth --root $work/root --runroot $work/run"
P="podman --root $work/proot --runroot $work/prun --tmpdir $work/ptmp --cgroup-manager cgroupfs --events-backend file --runtime crun"
ul="--ulimit nofile=1024:1024 --ulimit nproc=1024:1024"
cleanup() {
  $B system reset -f >/dev/null 2>&1 || true
  $P rm -af >/dev/null 2>&1 || true
  $P system reset -f >/dev/null 2>&1 || true
}
trap cleanup EXIT
"$bin/berth" bundle "$work/bundle" -- /bin/true >/dev/null
tar -C "$work/bundle/rootfs" -cf "$work/rootfs.tar" .
$B import "$work/rootfs.tar" bench:1 >/dev/null
$P import -q "$work/rootfs.tar" localhost/bench:1 >/dev/null
hyperfine -N --warmup 3 --runs "$runs" --export-json "$work/h.json" \
  -n "berth run --rm (engine)" "$B run --rm bench:1 true" \
  -n "berth run --rm (direct)" "env BERTH_RUN_DIRECT=1 $B run --rm bench:1 true" \
  -n "podman run --rm" "$P run --rm $ul localhost/bench:1 true" >&2
python3 - "$work/h.json" <<'PY'
import json, sys
r = {x["command"]: x["median"] for x in json.load(open(sys.argv[1]))["results"]}
e, d, p = (r[k] for k in ["berth run --rm (engine)", "berth run --rm (direct)", "podman run --rm"])
print(f"median: engine {e*1000:.1f} ms, direct {d*1000:.1f} ms, podman {p*1000:.1f} ms")
print(f"engine / direct = {e/d:.2f}; engine / podman = {e/p:.2f}; direct / podman = {d/p:.2f}")
PY
INNER
unshare -m bash "$work/inner.sh"
rm -rf "$work"
