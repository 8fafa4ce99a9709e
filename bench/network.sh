#!/usr/bin/env bash
# Networks: berth vs podman (its default network stack, netavark) vs Docker (Debian's
# docker.io: a dockerd the script starts on a private socket, data root and exec root, when
# installed) in one run, everything inside a network namespace and mount namespace this
# script makes (`unshare -m -n`): the bridges, nftables/iptables tables and NAT of all three
# live there, never on the host's network.
#  1. time to network-ready: `run -d -p 18080:80 IMAGE httpd` until the first HTTP answer
#     through the published port on 127.0.0.1 (curl in a tight loop), RUNS times, medians.
#  2. berth's network setup alone per container (veth + addresses + routes + nft elements
#     + /etc files; the engine's `network setup` debug line, elapsed_us), on the default
#     network and on a user network (plus its DNS records), medians.
#  3. throughput through a published port on 127.0.0.1: `wrk` against busybox httpd in a
#     container (req/s; Docker's loopback path is its userland proxy), and `iperf3` (a
#     server in the container, the client on the host; Gbit/s) against iperf3 over plain
#     loopback in the same namespace (the ceiling). The image carries Debian's iperf3 and
#     its libraries, copied in.
# Targets (issue 12): ready ≤ 0.1 × podman and Docker; setup ≤ 5 ms median; wrk ≥ 2 ×
# Docker's req/s.
# Usage: bench/network.sh [RUNS] [SECONDS]   (as root; needs podman, crun, curl, wrk, python3;
#        iperf3 optional; SECONDS of each wrk/iperf3 run, default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
secs=${2:-5}
. bench/lib.sh
bench_need podman crun curl wrk python3 tar busybox
bench_build berth-runtime berth berth-engine berth-net
bench_work network
export work runs secs bin
mkdir -p "$work/rfs/bin" "$work/rfs/etc" "$work/rfs/tmp"
chmod 1777 "$work/rfs/tmp"
cp "$(command -v busybox)" "$work/rfs/bin/busybox"
for a in sh httpd; do ln -s busybox "$work/rfs/bin/$a"; done
echo bench >"$work/rfs/etc/hostname"
if command -v iperf3 >/dev/null; then
  # Debian's iperf3 is dynamic: the binary, its libraries and the loader, at their paths.
  cp -L "$(command -v iperf3)" "$work/rfs/bin/iperf3"
  for lib in $(ldd "$(command -v iperf3)" | grep -o '/[^ ]*'); do
    mkdir -p "$work/rfs$(dirname "$lib")"
    cp -L "$lib" "$work/rfs$lib"
  done
fi
tar -C "$work/rfs" -cf "$work/rootfs.tar" .
cat >"$work/inner.sh" <<'INNER'
. "$bench_lib"
set -euo pipefail
bench_ns
export BERTH_MONITOR=$bin/berth-monitor BERTH_RUNTIME=$bin/berth-runtime
if bench_dockerd; then
  if ! $D import "$work/rootfs.tar" bench:1 >/dev/null; then
    D=""
    echo "docker: dockerd did not answer (see $work/dockerd.log), skipped"
  fi
else
  echo "docker: not installed, skipped"
fi
cleanup() {
  $B system reset -f >/dev/null 2>&1 || true
  $P rm -af -t 0 >/dev/null 2>&1 || true
  $P system reset -f >/dev/null 2>&1 || true
  if [ -n "${dpid:-}" ]; then
    [ -z "$D" ] || $D rm -f $($D ps -aq) >/dev/null 2>&1 || true
    bench_dockerd_stop
  fi
}
trap cleanup EXIT
ready() { until curl -sf -m 1 http://127.0.0.1:${1:-18080}/hostname >/dev/null; do :; done; }
# The tools measured: name and how its `run -d` / `rm -f` start.
tools="berth podman"
[ -z "$D" ] || tools="$tools docker"
run_d() { # TOOL ARGS… → the container's id
  local t=$1; shift
  case $t in
    berth) $B run -d "$@" ;;
    podman) $P run -d $ul "$@" ;;
    docker) $D run -d $ul "$@" ;;
  esac
}
img() { case $1 in berth) echo bench:1 ;; *) echo localhost/bench:1 ;; esac; }
rm_f() {
  case $1 in
    berth) $B rm -f "$2" >/dev/null ;;
    podman) $P rm -f -t 0 "$2" >/dev/null ;;
    docker) $D rm -f "$2" >/dev/null ;;
  esac
}
$B import --cmd sh "$work/rootfs.tar" bench:1 >/dev/null
$P import -q "$work/rootfs.tar" localhost/bench:1 >/dev/null
[ -z "$D" ] || $D tag bench:1 localhost/bench:1
$B network create bnet >/dev/null
# Warm-up: snapshots unpacked, each tool's storage and network initialised.
for _ in 1 2; do
  for t in $tools; do
    id=$(run_d $t -p 18080:80 "$(img $t)" httpd -f -p 80 -h /etc); ready; rm_f $t "$id"
  done
done
: >"$work/times"
for _ in $(seq "$runs"); do
  for t in $tools; do
    t0=$(now); id=$(run_d $t -p 18080:80 "$(img $t)" httpd -f -p 80 -h /etc); ready; t1=$(now)
    echo "$t ready $(( (t1 - t0) / 1000 ))" >>"$work/times"
    rm_f $t "$id"
  done
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
# Throughput through a published port on 127.0.0.1.
for t in $tools; do
  id=$(run_d $t -p 18090:80 "$(img $t)" httpd -f -p 80 -h /etc); ready 18090
  rps=$(wrk -t 1 -c 16 -d "${secs}s" http://127.0.0.1:18090/hostname | awk '/^Requests\/sec:/ {print $2}')
  echo "wrk $t ${rps:-0}" >>"$work/tput"
  rm_f $t "$id"
done
if command -v iperf3 >/dev/null; then
  # Gbit/s of one iperf3 run against 127.0.0.1:PORT; a run the server refuses (still busy
  # with the readiness probe's test) is tried again, and 0 is printed after five failures.
  gbps() {
    local out
    for _ in 1 2 3 4 5; do
      out=$(iperf3 -c 127.0.0.1 -p "$1" -t "$secs" -J 2>/dev/null || true)
      if printf '%s' "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9)' 2>/dev/null; then
        return 0
      fi
      printf '%s' "$out" | python3 -c 'import json,sys; print("iperf3:", json.load(sys.stdin).get("error", "no result"), file=sys.stderr)' 2>/dev/null || true
      sleep 0.5
    done
    echo 0
  }
  iperf3 -s -p 15300 -D --pidfile "$work/iperf.pid" >/dev/null
  for _ in $(seq 200); do iperf3 -c 127.0.0.1 -p 15300 -n 64K >/dev/null 2>&1 && break; sleep 0.05; done
  echo "iperf3 loopback $(gbps 15300)" >>"$work/tput"
  kill "$(cat "$work/iperf.pid")"
  for t in $tools; do
    id=$(run_d $t -p 15201:5201 "$(img $t)" iperf3 -s)
    for _ in $(seq 200); do iperf3 -c 127.0.0.1 -p 15201 -n 64K >/dev/null 2>&1 && break; sleep 0.05; done
    echo "iperf3 $t $(gbps 15201)" >>"$work/tput"
    rm_f $t "$id"
  done
else
  echo "iperf3: not installed, its throughput skipped"
fi
INNER
bench_inner
python3 - "$work/times" "$work/tput" <<'PY'
import sys, os, collections
t = collections.defaultdict(list)
for line in open(sys.argv[1]):
    f = line.split()
    t[f"{f[0]} {f[1]}"].append(int(f[2]) / 1000)
med = {k: sorted(v)[len(v) // 2] for k, v in t.items()}
for k, v in med.items():
    print(f"{k:<26}{v:>10.2f} ms   (median of {len(t[k])})")
for peer in ["podman", "docker"]:
    if f"{peer} ready" in med:
        r = med["berth ready"] / med[f"{peer} ready"]
        print(f"{'berth / ' + peer + ' ready':<26}{r:>10.3f}      (target <= 0.1: {'met' if r <= 0.1 else 'NOT met'})")
for n in ["berth", "bnet"]:
    s = med[f"setup {n}"]
    print(f"{'setup on ' + n:<26}{s:>10.2f} ms   (target <= 5 ms: {'met' if s <= 5 else 'NOT met'})")
tp = {}
if os.path.exists(sys.argv[2]):
    for line in open(sys.argv[2]):
        f = line.split()
        tp[(f[0], f[1])] = float(f[2])
for (kind, who), v in tp.items():
    unit = "req/s" if kind == "wrk" else "Gbit/s"
    print(f"{kind + ' ' + who:<26}{v:>10.2f} {unit}")
for peer in ["podman", "docker"]:
    if ("wrk", peer) in tp and tp[("wrk", peer)] > 0:
        r = tp[("wrk", "berth")] / tp[("wrk", peer)]
        goal = f"  (target >= 2: {'met' if r >= 2 else 'NOT met'})" if peer == "docker" else ""
        print(f"{'wrk berth / ' + peer:<26}{r:>10.2f}{goal}")
for peer in ["podman", "docker", "loopback"]:
    if ("iperf3", peer) in tp and tp[("iperf3", peer)] > 0:
        print(f"{'iperf3 berth / ' + peer:<26}{tp[('iperf3', 'berth')] / tp[('iperf3', peer)]:>10.2f}")
PY
rm -rf "$work"
