#!/usr/bin/env bash
# Networks: berth vs podman (its default network stack, netavark) in one run, everything
# inside a network namespace and mount namespace this script makes (`unshare -m -n`): the
# bridges, nftables tables and NAT of both live there, never on the host's network.
#  1. time to network-ready: `run -d -p 18080:80 IMAGE httpd` until the first HTTP answer
#     through the published port on 127.0.0.1 (curl in a tight loop), RUNS times, medians.
#  2. berth's network setup alone per container (veth + addresses + routes + nft elements
#     + /etc files; the engine's `network setup` debug line, elapsed_us), on the default
#     network and on a user network (plus its DNS records), medians.
# Docker is not measured: docker.io is not installed on this machine (see docs/benchmarks.md).
# Targets (issue 12): ready ≤ 0.1 × podman; setup ≤ 5 ms median.
# Usage: bench/network.sh [RUNS]   (as root; needs podman, crun, curl, python3)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
for t in podman crun curl python3 tar busybox; do command -v $t >/dev/null || { echo "missing $t: run scripts/install-deps.sh" >&2; exit 1; }; done
cargo build --release -q -p berth-runtime -p berth -p berth-engine -p berth-net
bin=$PWD/target/release
work=$(mktemp -d /tmp/berth-bench-network.XXXXXX)
export work runs bin
mkdir -p "$work/rfs/bin" "$work/rfs/etc"
cp "$(command -v busybox)" "$work/rfs/bin/busybox"
for a in sh httpd; do ln -s busybox "$work/rfs/bin/$a"; done
echo bench >"$work/rfs/etc/hostname"
tar -C "$work/rfs" -cf "$work/rootfs.tar" .
cat >"$work/inner.sh" <<'INNER'
set -euo pipefail
mount --make-rprivate /
umount /sys/fs/cgroup/unified 2>/dev/null || true
ip link set lo up
export BERTH_MONITOR=$bin/berth-monitor BERTH_RUNTIME=$bin/berth-runtime
B="$bin/berth --root $work/root --runroot $work/run"
P="podman --root $work/proot --runroot $work/prun --tmpdir $work/ptmp --cgroup-manager cgroupfs --events-backend file --runtime crun"
ul="--ulimit nofile=1024:1024 --ulimit nproc=1024:1024"
cleanup() {
  $B system reset -f >/dev/null 2>&1 || true
  $P rm -af -t 0 >/dev/null 2>&1 || true
  $P system reset -f >/dev/null 2>&1 || true
}
trap cleanup EXIT
now() { date +%s%N; }
ready() { until curl -sf -m 1 http://127.0.0.1:18080/hostname >/dev/null; do :; done; }
$B import --cmd sh "$work/rootfs.tar" bench:1 >/dev/null
$P import -q "$work/rootfs.tar" localhost/bench:1 >/dev/null
$B network create bnet >/dev/null
# Warm-up: snapshots unpacked, podman's storage and network initialised.
for _ in 1 2; do
  id=$($B run -d -p 18080:80 bench:1 httpd -f -p 80 -h /etc); ready; $B rm -f "$id" >/dev/null
  id=$($P run -d $ul -p 18080:80 localhost/bench:1 httpd -f -p 80 -h /etc); ready; $P rm -f -t 0 "$id" >/dev/null
done
: >"$work/times"
for _ in $(seq "$runs"); do
  t0=$(now); id=$($B run -d -p 18080:80 bench:1 httpd -f -p 80 -h /etc); ready; t1=$(now)
  echo "berth ready $(( (t1 - t0) / 1000 ))" >>"$work/times"
  $B rm -f "$id" >/dev/null
  t0=$(now); id=$($P run -d $ul -p 18080:80 localhost/bench:1 httpd -f -p 80 -h /etc); ready; t1=$(now)
  echo "podman ready $(( (t1 - t0) / 1000 ))" >>"$work/times"
  $P rm -f -t 0 "$id" >/dev/null
done
for net in berth bnet; do
  for _ in $(seq "$runs"); do
    id=$(BERTH_LOG=berth_engine::network=debug $B run -d --network $net -p 18081:80 bench:1 httpd -f -p 80 -h /etc 2>"$work/log")
    us=$(sed 's/\x1b\[[0-9;]*m//g' "$work/log" | sed -n 's/.*network setup.*elapsed_us=\([0-9]*\).*/\1/p; s/.*elapsed_us=\([0-9]*\).*network setup.*/\1/p' | head -n 1)
    [ -n "$us" ] || { echo "no 'network setup' line in the log:" >&2; cat "$work/log" >&2; exit 1; }
    echo "setup $net ${us:-0}" >>"$work/times"
    $B rm -f "$id" >/dev/null
  done
done
INNER
unshare -m -n bash ${BENCH_TRACE:+-x} "$work/inner.sh"
python3 - "$work/times" <<'PY'
import sys, collections
t = collections.defaultdict(list)
for line in open(sys.argv[1]):
    f = line.split()
    t[f"{f[0]} {f[1]}"].append(int(f[2]) / 1000)
med = {k: sorted(v)[len(v) // 2] for k, v in t.items()}
for k, v in med.items():
    print(f"{k:<26}{v:>10.2f} ms   (median of {len(t[k])})")
r = med["berth ready"] / med["podman ready"]
print(f"{'berth / podman ready':<26}{r:>10.3f}      (target <= 0.1: {'met' if r <= 0.1 else 'NOT met'})")
for n in ["berth", "bnet"]:
    s = med[f"setup {n}"]
    print(f"{'setup on ' + n:<26}{s:>10.2f} ms   (target <= 5 ms: {'met' if s <= 5 else 'NOT met'})")
PY
rm -rf "$work"
