#!/usr/bin/env bash
# `berth run --rm IMAGE true` vs `podman run --rm IMAGE true` (crun) vs bare `crun run` of a
# bundle, one busybox-static image, in one run (hyperfine). crun 1.8 refuses hybrid cgroup
# hosts, so all three are measured inside a private mount namespace where
# /sys/fs/cgroup/unified is unmounted (a plain cgroup v1 view), as bench/runtime.sh does;
# berth is also measured on the real host view. Prints medians and ratios.
# Usage: bench/images.sh [RUNS]   (as root; needs hyperfine, podman, crun, busybox-static)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-50}
for t in hyperfine podman crun python3 tar; do command -v $t >/dev/null || { echo "missing $t: run scripts/install-deps.sh" >&2; exit 1; }; done
cargo build --release -q -p berth-runtime -p berth
bin=$PWD/target/release
work=$(mktemp -d /tmp/berth-bench-images.XXXXXX)
P="podman --root $work/proot --runroot $work/prun --tmpdir $work/ptmp --cgroup-manager cgroupfs --events-backend file"
cleanup() {
  $P rm -af >/dev/null 2>&1 || true
  $P system reset -f >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
B="$bin/berth --root $work/root --runroot $work/run"
"$bin/berth" bundle "$work/bundle" -- /bin/true >/dev/null
python3 - "$work/bundle/config.json" <<'PY'
import json, sys
p = sys.argv[1]; c = json.load(open(p))
c["linux"]["cgroupsPath"] = "/berth-bench-images"
json.dump(c, open(p, "w"), indent=1)
PY
tar -C "$work/bundle/rootfs" -cf "$work/rootfs.tar" .
$B import "$work/rootfs.tar" bench:1 >/dev/null
$P import -q "$work/rootfs.tar" localhost/bench:1 >/dev/null
$B run --rm bench:1 true   # unpack the snapshot once
export work runs
inner() {
  set -euo pipefail
  local json=$work/$1.json; shift
  hyperfine -N --warmup 3 --runs "$runs" --export-json "$json" "$@" >"$json.log" 2>&1 || { cat "$json.log" >&2; return 1; }
}
export -f inner
ul="--ulimit nofile=1024:1024 --ulimit nproc=1024:1024"
unshare -m bash -c "
  set -euo pipefail
  mount --make-rprivate /
  umount /sys/fs/cgroup/unified 2>/dev/null || true
  inner v1 -n 'berth run --rm' \"$B run --rm bench:1 true\" \
           -n 'podman run --rm (crun)' \"$P --runtime crun run --rm $ul localhost/bench:1 true\" \
           -n 'crun run (bundle)' \"sh -c 'cd $work/bundle && crun --root $work/crun run b'\"
"
inner hybrid -n "berth run --rm (hybrid host)" "$B run --rm bench:1 true"
python3 - "$work" <<'PY'
import json, sys
w = sys.argv[1]
def med(name):
    return {r["command"]: sorted(r["times"])[len(r["times"]) // 2] * 1000 for r in json.load(open(f"{w}/{name}.json"))["results"]}
v1, hy = med("v1"), med("hybrid")
for k, v in list(v1.items()) + list(hy.items()):
    print(f"{k:<34}{v:>9.2f} ms")
b, p, c = v1["berth run --rm"], v1["podman run --rm (crun)"], v1["crun run (bundle)"]
print(f"{'berth / podman':<34}{b / p:>9.2f}   (target <= 0.2)")
print(f"{'berth / bare crun':<34}{b / c:>9.2f}   (target <= 2)")
PY
