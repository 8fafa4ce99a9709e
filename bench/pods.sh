#!/usr/bin/env bash
# Pods from Kubernetes YAML: `berth kube play` of a pod of 3 containers until all run, and
# `kube down`, against `podman kube play` / `podman kube down` in the same run, inside a
# network namespace of its own (bridges and firewall rules are made there, never in the
# host's). One busybox-static image imported into each (`localhost/bench:1`).
# crun 1.8 refuses hybrid cgroup hosts, so podman (and berth, for the same view) run inside
# a private mount namespace where /sys/fs/cgroup/unified is unmounted, as bench/engine.sh.
# Target (issue 13): berth ≤ 0.1 × podman for each.
# Usage: bench/pods.sh [RUNS]   (as root; needs podman, crun, conmon, catatonit, python3)
# BENCH_PROFILE=debug measures target/debug (no release build); BENCH_NO_BUILD=1 measures
# target/release as it is; BENCH_BIN=DIR measures the binaries in DIR (with BENCH_NO_BUILD).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
profile=${BENCH_PROFILE:-release}
for t in podman crun conmon catatonit python3 tar; do command -v $t >/dev/null || { echo "missing $t: run scripts/install-deps.sh" >&2; exit 1; }; done
if [ -n "${BENCH_NO_BUILD:-}" ]; then
  :
elif [ "$profile" = release ]; then
  cargo build --release -q -p berth-runtime -p berth -p berth-engine
else
  cargo build -q -p berth-runtime -p berth -p berth-engine
fi
bin=${BENCH_BIN:-$PWD/target/$profile}
work=$(mktemp -d /tmp/berth-bench-pods.XXXXXX)
export work runs bin
cat >"$work/pod.yaml" <<'YAML'
apiVersion: v1
kind: Pod
metadata:
  name: bench
spec:
  containers:
  - name: a
    image: localhost/bench:1
    imagePullPolicy: IfNotPresent
    command: [/bin/sleep, "1000"]
  - name: b
    image: localhost/bench:1
    imagePullPolicy: IfNotPresent
    command: [/bin/sleep, "1000"]
  - name: c
    image: localhost/bench:1
    imagePullPolicy: IfNotPresent
    command: [/bin/sleep, "1000"]
YAML
# crun cannot raise RLIMIT_NOFILE/NPROC to podman's defaults here (bench/engine.sh passes
# --ulimit; kube play has no such flag): the same limits through containers.conf.
printf '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n' >"$work/containers.conf"
export CONTAINERS_CONF=$work/containers.conf
cat >"$work/inner.sh" <<'INNER'
set -euo pipefail
mount --make-rprivate /
ip link set lo up
umount /sys/fs/cgroup/unified 2>/dev/null || true
B="$bin/berth --root $work/root --runroot $work/run"
P="podman --root $work/proot --runroot $work/prun --tmpdir $work/ptmp --cgroup-manager cgroupfs --events-backend file --runtime crun"
cleanup() {
  $B kube down --force "$work/pod.yaml" >/dev/null 2>&1 || true
  $B system reset -f >/dev/null 2>&1 || true
  $P kube down "$work/pod.yaml" >/dev/null 2>&1 || true
  $P pod rm -af >/dev/null 2>&1 || true
  $P system reset -f >/dev/null 2>&1 || true
}
trap cleanup EXIT
now() { date +%s%N; }
"$bin/berth" bundle "$work/bundle" -- /bin/true >/dev/null
tar -C "$work/bundle/rootfs" -cf "$work/rootfs.tar" .
$B import "$work/rootfs.tar" localhost/bench:1 >/dev/null
$P import -q "$work/rootfs.tar" localhost/bench:1 >/dev/null
running() { # containers running of pod bench (berth: the 3 members; podman: + its infra)
  "$@" ps --format '{{.Names}} {{.Status}}' 2>/dev/null | grep -cE '^bench-[abc] Up' || true
}
# Warm-up: snapshots unpacked, podman's pause image built, networks made.
for _ in 1 2; do
  $B kube play "$work/pod.yaml" >/dev/null; $B kube down "$work/pod.yaml" >/dev/null
  $P kube play "$work/pod.yaml" >/dev/null; $P kube down "$work/pod.yaml" >/dev/null
done
: >"$work/times"
for i in $(seq "$runs"); do
  t0=$(now); $B kube play "$work/pod.yaml" >/dev/null; t1=$(now)
  n=$(running $B); [ "$n" = 3 ] || { echo "berth: $n of 3 containers running after kube play" >&2; $B ps -a >&2; exit 1; }
  t2=$(now); $B kube down "$work/pod.yaml" >/dev/null; t3=$(now)
  echo "berth play $(( (t1 - t0) / 1000 ))" >>"$work/times"
  echo "berth down $(( (t3 - t2) / 1000 ))" >>"$work/times"
  t0=$(now); $P kube play "$work/pod.yaml" >/dev/null; t1=$(now)
  n=$(running $P); [ "$n" = 3 ] || { echo "podman: $n of 3 containers running after kube play" >&2; $P ps -a >&2; exit 1; }
  t2=$(now); $P kube down "$work/pod.yaml" >/dev/null; t3=$(now)
  echo "podman play $(( (t1 - t0) / 1000 ))" >>"$work/times"
  echo "podman down $(( (t3 - t2) / 1000 ))" >>"$work/times"
done
INNER
unshare -m -n bash ${BENCH_TRACE:+-x} "$work/inner.sh"
python3 - "$work/times" "$profile" <<'PY'
import sys, collections
t = collections.defaultdict(list)
for line in open(sys.argv[1]):
    tool, op, us = line.split()
    t[(tool, op)].append(int(us) / 1000)
med = {k: sorted(v)[len(v) // 2] for k, v in t.items()}
for (tool, op), v in sorted(med.items()):
    print(f"{tool + ' kube ' + op:<24}{v:>10.1f} ms   (median of {len(t[(tool, op)])}; berth {sys.argv[2]} build)")
for op in ["play", "down"]:
    r = med[("berth", op)] / med[("podman", op)]
    print(f"{'berth / podman ' + op:<24}{r:>10.3f}      (target <= 0.1: {'met' if r <= 0.1 else 'NOT met'})")
PY
rm -rf "$work"
