#!/usr/bin/env bash
# Pods: berth vs podman in one run, inside a network namespace of its own (its bridges and
# firewall rules never touch the host's). Each round, timed step by step (RUNS rounds,
# medians), one busybox-static image imported into each:
#   pod create --name bp -p 18080:80   (berth: its row and infra container; podman the same)
#   run -d --pod bp IMAGE sleep 1000   (twice: the first starts the pod's infra)
#   pod rm -f bp                       (members, infra, network)
# crun 1.8 refuses hybrid cgroup hosts, so podman (and berth, for the same view) run inside
# a private mount namespace where /sys/fs/cgroup/unified is unmounted, as bench/engine.sh.
# Usage: bench/pod.sh [RUNS]   (as root; needs podman, crun, conmon, python3)
#        BENCH_PROFILE=debug bench/pod.sh   measures target/debug (no release build)
#        BENCH_NO_BUILD=1 bench/pod.sh      measures target/release as it is
#        BENCH_NO_BUILD=1 BENCH_BIN=DIR bench/pod.sh   measures the binaries in DIR
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
for t in podman crun conmon python3 tar; do command -v $t >/dev/null || { echo "missing $t: run scripts/install-deps.sh" >&2; exit 1; }; done
profile=${BENCH_PROFILE:-release}
if [ "$profile" = release ] && [ -z "${BENCH_NO_BUILD:-}" ]; then
  cargo build --release -q -p berth-runtime -p berth -p berth-engine
fi
bin=${BENCH_BIN:-$PWD/target/$profile}
work=$(mktemp -d /tmp/berth-bench-pod.XXXXXX)
export work runs bin
cat >"$work/inner.sh" <<'INNER'
set -euo pipefail
mount --make-rprivate /
ip link set lo up
umount /sys/fs/cgroup/unified 2>/dev/null || true
B="$bin/berth --root $work/root --runroot $work/run"
P="podman --root $work/proot --runroot $work/prun --tmpdir $work/ptmp --cgroup-manager cgroupfs --events-backend file --runtime crun"
ul="--ulimit nofile=1024:1024 --ulimit nproc=1024:1024"
# The pod's infra container takes no --ulimit: the same limits as containers.conf defaults
# (crun may not raise the hard limits of this session).
printf '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n' >"$work/containers.conf"
export CONTAINERS_CONF="$work/containers.conf"
cleanup() {
  $B pod rm -f bp >/dev/null 2>&1 || true
  $B system reset -f >/dev/null 2>&1 || true
  $P pod rm -af >/dev/null 2>&1 || true
  $P system reset -f >/dev/null 2>&1 || true
}
trap cleanup EXIT
now() { date +%s%N; }
"$bin/berth" bundle "$work/bundle" -- /bin/true >/dev/null
tar -C "$work/bundle/rootfs" -cf "$work/rootfs.tar" .
$B import "$work/rootfs.tar" bench:1 >/dev/null
$P import -q "$work/rootfs.tar" localhost/bench:1 >/dev/null
round() { # $1: berth|podman; $2: "record" or "warm"
  local tool=$1 C t0 t1 t2 t3 t4
  if [ "$tool" = berth ]; then C=$B; x=""; else C=$P; x=$ul; fi
  t0=$(now); $C pod create --name bp -p 18080:80 >/dev/null; t1=$(now)
  $C run -d $x --pod bp bench:1 sleep 1000 >/dev/null; t2=$(now)
  $C run -d $x --pod bp bench:1 sleep 1000 >/dev/null; t3=$(now)
  if [ "$tool" = berth ]; then $C pod rm -f bp >/dev/null; else $C pod rm -f -t 0 bp >/dev/null; fi
  t4=$(now)
  if [ "$2" = record ]; then
    echo "$tool pod-create $(( (t1 - t0) / 1000 ))" >>"$work/times"
    echo "$tool run-first $(( (t2 - t1) / 1000 ))" >>"$work/times"
    echo "$tool run-second $(( (t3 - t2) / 1000 ))" >>"$work/times"
    echo "$tool pod-rm-f $(( (t4 - t3) / 1000 ))" >>"$work/times"
    echo "$tool total $(( (t4 - t0) / 1000 ))" >>"$work/times"
  fi
}
# Warm-up: the snapshot unpacked, podman's storage and its pause image made.
for _ in 1 2; do round berth warm; round podman warm; done
: >"$work/times"
for _ in $(seq "$runs"); do round berth record; round podman record; done
INNER
unshare -m -n bash ${BENCH_TRACE:+-x} "$work/inner.sh"
python3 - "$work/times" <<'PY'
import sys, collections
t = collections.defaultdict(list)
for line in open(sys.argv[1]):
    tool, step, us = line.split()
    t[(tool, step)].append(int(us) / 1000)
med = {k: sorted(v)[len(v) // 2] for k, v in t.items()}
for step in ["pod-create", "run-first", "run-second", "pod-rm-f", "total"]:
    b, p = med[("berth", step)], med[("podman", step)]
    print(f"{step:<12} berth {b:>9.2f} ms   podman {p:>9.2f} ms   berth/podman {b / p:>6.3f}   (median of {len(t[('berth', step)])})")
PY
rm -rf "$work"
