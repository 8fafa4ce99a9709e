#!/usr/bin/env bash
# `berth build` vs `buildah bud`, in one run, on one Containerfile (examples/hello: three
# stages, FROM scratch + COPY busybox, two RUNs, four COPYs):
#   cold          empty store / no cache: every step runs
#   fully cached  nothing changed since the last build: every step is reused
# buildah runs with --layers (its cache) and --isolation chroot; its cold runs start after
# `buildah rmi --all --force`. Target: fully cached `berth build` <= 50 ms.
# Usage: bench/build.sh [RUNS]   (as root; needs hyperfine, buildah, busybox-static)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
for t in hyperfine buildah python3; do command -v $t >/dev/null || { echo "missing $t: run scripts/install-deps.sh" >&2; exit 1; }; done
cargo build --release -q -p berth-runtime -p berth
berth=$PWD/target/release/berth
work=$(mktemp -d /tmp/berth-bench-build.XXXXXX)
trap 'buildah --root "$work/bh" --runroot "$work/bhrun" rmi --all --force >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
cp -r examples/hello "$work/ctx"
cp /bin/busybox "$work/ctx/busybox"
export BERTH_RUNTIME=$PWD/target/release/berth-runtime
b="$berth --runroot $work/run build -q -t hello $work/ctx"
bh="buildah --root $work/bh --runroot $work/bhrun bud -q --layers --isolation chroot -t hello $work/ctx"
bh_clean="buildah --root $work/bh --runroot $work/bhrun rmi --all --force"
hf() {  # name, hyperfine args…
  local name=$1; shift
  hyperfine --runs "$runs" --export-json "$work/$name.json" "$@" >"$work/$name.log" 2>&1 || { cat "$work/$name.log" >&2; exit 1; }
}
hf berth-cold --prepare "rm -rf $work/cold" "$berth --root $work/cold --runroot $work/run build -q -t hello $work/ctx"
$berth --root "$work/warm" --runroot "$work/run" build -q -t hello "$work/ctx" >/dev/null
hf berth-cached --warmup 3 "$berth --root $work/warm --runroot $work/run build -q -t hello $work/ctx"
hf buildah-cold --prepare "$bh_clean" "$bh"
$bh >/dev/null 2>&1
hf buildah-cached --warmup 3 "$bh"
python3 - "$work" <<'PY'
import json, sys, os
w = sys.argv[1]
def med(n):
    r = json.load(open(os.path.join(w, n + ".json")))["results"][0]
    return r["median"] * 1000, r["stddev"] * 1000 if r["stddev"] is not None else 0
rows = {n: med(n) for n in ["berth-cold", "berth-cached", "buildah-cold", "buildah-cached"]}
for n, (m, s) in rows.items():
    print(f"{n:16s} {m:9.1f} ms  ± {s:.1f}")
print(f"cold:   berth / buildah = {rows['berth-cold'][0] / rows['buildah-cold'][0]:.2f}")
print(f"cached: berth / buildah = {rows['berth-cached'][0] / rows['buildah-cached'][0]:.3f}")
ok = rows['berth-cached'][0] <= 50
print(f"fully cached berth build <= 50 ms: {'met' if ok else 'NOT met'}")
PY
