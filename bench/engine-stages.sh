#!/usr/bin/env bash
# Where the time of `berth run -d` goes: RUNS rounds of `run -d IMAGE sleep 1000` (and
# `rm -f`) with BERTH_TRACE_STAGES=1, inside a network and mount namespace of its own (as
# bench/engine.sh), on the default network. Collects the stage lines of the CLI (its
# stderr), the monitor (its monitor.log) and the runtime (its stderr is the container's:
# the log) — `<prog>: stage <µs> <pid> <name>` on CLOCK_MONOTONIC (engine trace.rs,
# runtime trace.rs) — and prints per stage the median time it began after the command was
# launched ("at") and how long it lasted until the same process's next stage ("lasts").
# Usage: bench/engine-stages.sh [RUNS]   (as root)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
if [ -z "${BERTH_BIN:-}" ]; then
  cargo build --release -q -p berth-runtime -p berth -p berth-engine
fi
bin=${BERTH_BIN:-$PWD/target/release}
work=$(mktemp -d /tmp/berth-engine-stages.XXXXXX)
trap 'rm -rf "$work"' EXIT
"$bin/berth" bundle "$work/bundle" -- /bin/true >/dev/null
tar -C "$work/bundle/rootfs" -cf "$work/rootfs.tar" .
unshare -m -n bash -c "
  set -e
  mount --make-rprivate /
  umount /sys/fs/cgroup/unified 2>/dev/null || true
  ip link set lo up
  python3 - '$bin' '$work' '$runs'
" <<'PY'
import json, os, re, statistics, subprocess, sys, time
bin, work, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
root, runroot = f"{work}/root", f"{work}/run"
B = [f"{bin}/berth", "--root", root, "--runroot", runroot]
env = dict(os.environ, BERTH_MONITOR=f"{bin}/berth-monitor", BERTH_RUNTIME=f"{bin}/berth-runtime")
subprocess.run(B + ["import", f"{work}/rootfs.tar", "bench:1"], check=True, stdout=subprocess.DEVNULL)
line = re.compile(r"(berth-engine|berth-runtime): stage (\d+) (\d+) ([A-Za-z0-9_:.-]+)")
def once(trace):
    e = dict(env, BERTH_TRACE_STAGES="1") if trace else env
    t0 = time.monotonic_ns() // 1000
    p = subprocess.run(B + ["run", "-d", "bench:1", "sleep", "1000"], env=e, check=True,
                       capture_output=True, text=True)
    t1 = time.monotonic_ns() // 1000
    cid = p.stdout.strip()
    text = p.stderr
    d = f"{root}/containers/{cid}"
    for f in ["monitor.log", "ctr.log"]:
        try:
            text += open(f"{d}/{f}").read()
        except OSError:
            pass
    subprocess.run(B + ["rm", "-f", cid], env=env, check=True, stdout=subprocess.DEVNULL)
    st = [(int(m[2]), m[3], m[1], m[4]) for m in line.finditer(text)]
    return t0, t1, sorted(st)
for _ in range(3):
    once(False)
walls, at, lasts, order = [], {}, {}, []
for _ in range(runs):
    t0, t1, st = once(True)
    walls.append((t1 - t0) / 1000)
    by_pid = {}
    for us, pid, prog, name in st:
        by_pid.setdefault(pid, []).append((us, prog, name))
    for pid, seq in by_pid.items():
        for i, (us, prog, name) in enumerate(seq):
            key = f"{prog.removeprefix('berth-')} {name}"
            if key not in at:
                order.append(key)
            at.setdefault(key, []).append((us - t0) / 1000)
            nxt = seq[i + 1][0] if i + 1 < len(seq) else None
            if nxt is not None:
                lasts.setdefault(key, []).append((nxt - us) / 1000)
plain = [once(False) for _ in range(runs)]
print(f"run -d wall, traced   {statistics.median(walls):8.2f} ms (median of {runs})")
print(f"run -d wall, untraced {statistics.median([(b - a) / 1000 for a, b, _ in plain]):8.2f} ms")
print(f"{'stage':<34}{'at ms':>9}{'lasts ms':>10}")
for k in sorted(order, key=lambda k: statistics.median(at[k])):
    l = f"{statistics.median(lasts[k]):10.2f}" if k in lasts else f"{'':>10}"
    print(f"{k:<34}{statistics.median(at[k]):9.2f}{l}")
PY
