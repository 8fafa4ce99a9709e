#!/usr/bin/env bash
# Where berth-runtime's time goes: runs `run` and create/start/delete RUNS times with
# BERTH_TRACE_STAGES=1 (crates/runtime/src/trace.rs) and prints, per stage, the median time
# it began after the command was launched ("at") and how long it lasted until that process's
# next stage ("lasts"; the runtime and the container's init are separate lanes that overlap).
# Measured as bench/runtime.sh measures: busybox bundle running /bin/true, cgroupsPath
# /berth-bench, inside a private mount namespace where /sys/fs/cgroup/unified is unmounted.
# Usage: bench/runtime-stages.sh [RUNS]   (as root; BERTH_RUNTIME=path measures that binary)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-50}
if [ -z "${BERTH_RUNTIME:-}" ] || [ ! -x "${BERTH:-target/release/berth}" ]; then
  cargo build --release -q -p berth-runtime -p berth
fi
berth=${BERTH_RUNTIME:-$PWD/target/release/berth-runtime}
work=$(mktemp -d /tmp/berth-stages.XXXXXX)
trap 'rm -rf "$work"' EXIT
${BERTH:-./target/release/berth} bundle "$work/bundle" -- /bin/true >/dev/null
python3 - "$work/bundle/config.json" <<'PY'
import json, sys
p = sys.argv[1]; c = json.load(open(p))
c["linux"]["cgroupsPath"] = "/berth-bench"
json.dump(c, open(p, "w"), indent=1)
PY
unshare -m bash -c "
  mount --make-rprivate /
  umount /sys/fs/cgroup/unified 2>/dev/null || true
  python3 - '$berth' '$work' '$runs'
" <<'PY'
import os, subprocess, sys, time, statistics
berth, work, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
env = dict(os.environ, BERTH_TRACE_STAGES="1")
root = f"{work}/state"
bundle = f"{work}/bundle"

def launch(args, errpath):
    """Runs one command, stderr to a file (not a pipe: a created container's init keeps
    it open until start); returns (launch µs, end µs, pid)."""
    with open(errpath, "w") as err:
        t0 = time.monotonic_ns() // 1000
        p = subprocess.run(args, env=env, cwd=bundle, stdout=subprocess.DEVNULL, stderr=err)
        t1 = time.monotonic_ns() // 1000
    if p.returncode != 0:
        sys.exit(f"{args}: exit {p.returncode}: {open(errpath).read()}")
    return t0, t1

def events(*paths):
    ev = []
    for path in paths:
        for line in open(path).read().splitlines():
            f = line.split(" ", 4)
            if len(f) == 5 and f[1] == "stage":
                ev.append((int(f[2]), int(f[3]), f[4]))
    return ev

def report(title, samples):
    # samples: list of lists of (name, at, lasts) per run, plus totals
    at, lasts, order = {}, {}, []
    totals = []
    for total, rows in samples:
        totals.append(total)
        seen = {}
        for name, a, l in rows:
            k = name if name not in seen else f"{name} #{seen[name]+1}"
            seen[name] = seen.get(name, 0) + 1
            if k not in at:
                order.append(k); at[k] = []; lasts[k] = []
            at[k].append(a); lasts[k].append(l)
    order.sort(key=lambda k: statistics.median(at[k]))
    print(f"\n{title}: median total {statistics.median(totals)/1000:.2f} ms over {len(totals)} runs")
    print(f"{'stage':<42}{'at (ms)':>9}{'lasts (ms)':>12}")
    for k in order:
        print(f"{k:<42}{statistics.median(at[k])/1000:>9.2f}{statistics.median(lasts[k])/1000:>12.2f}")

def rows_of(t0, ends, ev, label):
    """ends: pid -> end µs of that lane when it has no later stage; label: pid -> prefix."""
    ev.sort()
    rows = []
    for i, (us, pid, name) in enumerate(ev):
        nxt = next((u for u, p, _ in ev[i+1:] if p == pid), ends.get(pid, ends[None]))
        rows.append((label.get(pid, "") + name, us - t0, nxt - us))
    return rows

run_s, csd_s = [], []
for i in range(runs + 3):
    t0, t1 = launch([berth, "--root", root, "run", "--bundle", bundle, f"r{i}"], f"{work}/e-run")
    if i >= 3:
        run_s.append((t1 - t0, rows_of(t0, {None: t1}, events(f"{work}/e-run"), {})))
    times = {}
    for verb, args in (("create", ["create", "--bundle", bundle, f"c{i}"]),
                       ("start", ["start", f"c{i}"]),
                       ("delete", ["delete", "--force", f"c{i}"])):
        times[verb] = launch([berth, "--root", root] + args, f"{work}/e-{verb}")
    c0, end = times["create"][0], times["delete"][1]
    ev = events(*(f"{work}/e-{v}" for v in times))
    # A command's lane: the pid of its first event ("main"); the init's lines start "init:".
    label, ends = {}, {None: end}
    for verb, (a, b) in times.items():
        first = min((e for e in ev if a <= e[0] <= b and not e[2].startswith("init")), default=None)
        if first:
            label[first[1]] = f"{verb}: "
            ends[first[1]] = b
    if i >= 3:
        rows = rows_of(c0, ends, ev, label)
        rows += [(f"{v} (whole command)", a - c0, b - a) for v, (a, b) in times.items()]
        csd_s.append((end - c0, rows))
report("berth-runtime run", run_s)
report("berth-runtime create+start+delete", csd_s)
