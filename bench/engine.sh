#!/usr/bin/env bash
# The engine: berth vs podman (and Docker when docker.io is installed: a dockerd of its own on a
# private socket and data root) in one run, inside a network namespace of its own.
#  1. `run -d IMAGE sleep 1000` and `rm -f ID`, each timed separately (RUNS times, medians),
#     one busybox-static image imported into each (`berth import`, `podman import`).
#  2. Memory: 50 detached `sleep` containers each; the per-container monitor's resident
#     size (sum of VmRSS of the `berth-monitor`/`berth-pump` processes / 50 vs the same for podman's
#     `conmon`), and that no `berth` CLI process stays between commands.
# crun 1.8 refuses hybrid cgroup hosts, so podman (and berth, for the same view) run inside
# a private mount namespace where /sys/fs/cgroup/unified is unmounted, as bench/images.sh.
# Targets (issue 11): berth ≤ 0.1 × podman for run -d and rm -f; monitor RSS ≤ 0.5 × conmon.
# Usage: bench/engine.sh [RUNS] [CONTAINERS]   (as root; needs podman, crun, conmon, python3;
#        BENCH_PROFILE=debug, BENCH_NO_BUILD=1, BIN=DIR: bench/lib.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
many=${2:-50}
. bench/lib.sh
bench_need podman crun conmon python3 tar
bench_build berth-runtime berth berth-engine
bench_work engine
export work runs many bin
cat >"$work/inner.sh" <<'INNER'
. "$bench_lib"
set -euo pipefail
bench_ns
cleanup() {
  $B system reset -f >/dev/null 2>&1 || true
  $P rm -af >/dev/null 2>&1 || true
  $P system reset -f >/dev/null 2>&1 || true
}
trap cleanup EXIT
bench_import bench:1
# Warm-up: the snapshot unpacked, podman's storage initialised.
for _ in 1 2 3; do
  id=$($B run -d bench:1 sleep 1000); $B rm -f "$id" >/dev/null
  id=$($P run -d $ul localhost/bench:1 sleep 1000); $P rm -f -t 0 "$id" >/dev/null
done
: >"$work/times"
for i in $(seq "$runs"); do
  t0=$(now); id=$($B run -d bench:1 sleep 1000); t1=$(now)
  $B rm -f "$id" >/dev/null; t2=$(now)
  echo "berth run -d $(( (t1 - t0) / 1000 ))" >>"$work/times"
  echo "berth rm -f $(( (t2 - t1) / 1000 ))" >>"$work/times"
  t0=$(now); id=$($P run -d $ul localhost/bench:1 sleep 1000); t1=$(now)
  $P rm -f -t 0 "$id" >/dev/null; t2=$(now)
  echo "podman run -d $(( (t1 - t0) / 1000 ))" >>"$work/times"
  echo "podman rm -f $(( (t2 - t1) / 1000 ))" >>"$work/times"
done
# Memory: $many detached containers each.
rss_of() { # sum of VmRSS and of Pss (kB) of the processes named $1 whose command line mentions $work
  local sum=0 n=0 pss=0
  for p in $(pgrep -x "$1" || true); do
    tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q "$work" || continue
    kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
    pk=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
    sum=$((sum + ${kb:-0})); pss=$((pss + ${pk:-0})); n=$((n + 1))
  done
  echo "$sum $n $pss"
}
for _ in $(seq "$many"); do $B run -d bench:1 sleep 1000 >/dev/null; done
for _ in $(seq "$many"); do $P run -d $ul localhost/bench:1 sleep 1000 >/dev/null; done
sleep 1
# A monitor whose container runs has become berth-pump (same process, smaller program).
read -r bsum bn bpss < <(rss_of 'berth-monitor|berth-pump')
read -r csum cn cpss < <(rss_of conmon)
left=$({ pgrep -x berth || true; } | while read -r p; do if tr '\0' ' ' <"/proc/$p/cmdline" | grep -q "$work"; then echo "$p"; fi; done | wc -l)
echo "mem berth-monitor $bsum $bn $bpss" >>"$work/times"
echo "mem conmon $csum $cn $cpss" >>"$work/times"
echo "mem berth-cli-left $left 0 0" >>"$work/times"
cleanup
# Docker (Debian's docker.io), when installed: its own dockerd on a private socket, data
# root and exec root, in this namespace; the same run -d / rm -f rounds.
if bench_dockerd; then
  if $D import "$work/rootfs.tar" bench:1 >/dev/null; then
    for _ in 1 2 3; do $D rm -f "$($D run -d $ul bench:1 sleep 1000)" >/dev/null; done
    for _ in $(seq "$runs"); do
      t0=$(now); id=$($D run -d $ul bench:1 sleep 1000); t1=$(now)
      $D rm -f "$id" >/dev/null; t2=$(now)
      echo "docker run -d $(( (t1 - t0) / 1000 ))" >>"$work/times"
      echo "docker rm -f $(( (t2 - t1) / 1000 ))" >>"$work/times"
    done
  else
    echo "docker: dockerd did not answer (see $work/dockerd.log), skipped"
  fi
  bench_dockerd_stop
else
  echo "docker: not installed, skipped"
fi
INNER
# A network namespace of the bench's own: berth's, podman's and dockerd's bridges and
# firewall rules are made there, never in the host's.
bench_inner
python3 - "$work/times" "$many" <<'PY'
import sys, collections
t = collections.defaultdict(list); mem = {}
for line in open(sys.argv[1]):
    f = line.split()
    if f[0] == "mem":
        mem[f[1]] = (int(f[2]), int(f[3]), int(f[4]))
    else:
        t[f"{f[0]} {f[1]} {f[2]}"].append(int(f[3]) / 1000)
med = {k: sorted(v)[len(v) // 2] for k, v in t.items()}
for k, v in med.items():
    print(f"{k:<26}{v:>10.2f} ms   (median of {len(t[k])})")
for op in ["run -d", "rm -f"]:
    b, p = med[f"berth {op}"], med[f"podman {op}"]
    print(f"{'berth / podman ' + op:<26}{b / p:>10.3f}      (target <= 0.1: {'met' if b / p <= 0.1 else 'NOT met'})")
    if f"docker {op}" in med:
        print(f"{'berth / docker ' + op:<26}{b / med['docker ' + op]:>10.3f}")
n = int(sys.argv[2])
(bs, bn, bp), (cs, cn, cp) = mem["berth-monitor"], mem["conmon"]
print(f"{'berth-monitor RSS':<26}{bs / max(bn, 1):>10.0f} kB  ({bn} processes, sum {bs} kB / {n} = {bs / n:.0f} kB)")
print(f"{'conmon RSS':<26}{cs / max(cn, 1):>10.0f} kB  ({cn} processes, sum {cs} kB / {n} = {cs / n:.0f} kB)")
r = bs / max(cs, 1)
print(f"{'monitor / conmon':<26}{r:>10.3f}      (target <= 0.5: {'met' if r <= 0.5 else 'NOT met'})")
print(f"{'berth-monitor PSS':<26}{bp / max(bn, 1):>10.0f} kB  (shared pages split among the {bn})")
print(f"{'conmon PSS':<26}{cp / max(cn, 1):>10.0f} kB")
print(f"{'monitor / conmon (PSS)':<26}{bp / max(cp, 1):>10.3f}")
left = mem["berth-cli-left"][0]
print(f"{'berth CLI processes left':<26}{left:>10d}      ({'none: the CLI holds nothing between commands' if left == 0 else 'LEFT OVER'})")
PY
rm -rf "$work"
