#!/usr/bin/env bash
# berth-runtime vs crun vs runc, in one run, on one busybox bundle running /bin/true:
#   run                    (create + start + wait + delete in one command)
#   create+start+delete    (three commands, as containerd/podman drive a runtime)
#   peak RSS of `run`      (GNU time %M)
# crun 1.8 refuses hybrid cgroup hosts, so everything is measured inside a private mount
# namespace where /sys/fs/cgroup/unified is unmounted (a plain cgroup v1 view) — the same
# environment for all three. berth-runtime is also measured on the hybrid host view.
# Usage: bench/runtime.sh [RUNS]   (as root; needs hyperfine, crun, runc, busybox-static;
#        BERTH_RUNTIME=path / BERTH=path measure those binaries instead of building them;
#        SECCOMP=1 gives the bundle a Docker-like default profile — default SCMP_ACT_ERRNO,
#        every x86_64 syscall of <asm/unistd_64.h> allowed but Docker's denied ones, clone
#        with its namespace-flag mask — and adds berth-runtime with its seccomp cache
#        emptied before every run, i.e. compiling the profile as it did before the cache;
#        LOAD=1 measures under CPU and disk load: two busy loops and a writer that rewrites
#        a 256 MiB file with O_DIRECT and fsync (dd) for the whole run, stopped at exit)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-100}
for t in hyperfine crun runc python3; do command -v $t >/dev/null || { echo "missing $t: run scripts/install-deps.sh" >&2; exit 1; }; done
[ -x /usr/bin/time ] || { echo "missing /usr/bin/time (apt-get install time)" >&2; exit 1; }
if [ -z "${BERTH_RUNTIME:-}" ] || [ ! -x "${BERTH:-target/release/berth}" ]; then
  cargo build --release -q -p berth-runtime -p berth
fi
berth=${BERTH_RUNTIME:-$PWD/target/release/berth-runtime}
work=$(mktemp -d /tmp/berth-bench.XXXXXX)
loaders=()
stop_load() { for p in "${loaders[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap 'stop_load; rm -rf "$work"' EXIT
if [ "${LOAD:-0}" = 1 ]; then
  for _ in 1 2; do (while :; do :; done) & loaders+=($!); done
  (while :; do dd if=/dev/zero of="$work/fill" bs=1M count=256 oflag=direct conv=fsync status=none; done) & loaders+=($!)
  echo "under load: two busy loops and a dd writer (pids ${loaders[*]})"
fi
"${BERTH:-./target/release/berth}" bundle "$work/bundle" -- /bin/true >/dev/null
# Same config for every runtime: no cgroup namespace (crun and runc accept it too).
python3 - "$work/bundle/config.json" <<'PY'
import json, sys
p = sys.argv[1]; c = json.load(open(p))
c["linux"]["cgroupsPath"] = "/berth-bench"
json.dump(c, open(p, "w"), indent=1)
PY
if [ "${SECCOMP:-0}" = 1 ]; then
python3 - "$work/bundle/config.json" <<'PY'
import json, re, sys
p = sys.argv[1]; c = json.load(open(p))
names = re.findall(r"^#define __NR_(\w+)\s+\d+", open("/usr/include/x86_64-linux-gnu/asm/unistd_64.h").read(), re.M)
denied = set("""acct add_key bpf clock_adjtime clock_settime clone clone3 create_module
delete_module finit_module get_kernel_syms get_mempolicy init_module ioperm iopl kcmp
kexec_file_load kexec_load keyctl lookup_dcookie mbind mount move_pages name_to_handle_at
nfsservctl open_by_handle_at perf_event_open pivot_root process_vm_readv process_vm_writev
ptrace query_module quotactl reboot request_key set_mempolicy setns settimeofday swapon
swapoff sysfs _sysctl umount2 unshare uselib userfaultfd ustat vm86 vm86old""".split())
c["linux"]["seccomp"] = {
    "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "syscalls": [
        {"names": sorted(n for n in names if n not in denied), "action": "SCMP_ACT_ALLOW"},
        {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
    ],
}
json.dump(c, open(p, "w"), indent=1)
PY
fi
export work berth runs
inner() {
  set -euo pipefail
  cd "$work/bundle"
  local json=$work/$1.json; shift
  hyperfine -N --warmup 5 --runs "$runs" --export-json "$json" "$@" >"$json.log" 2>&1 || { cat "$json.log" >&2; return 1; }
}
export -f inner
cmds() {  # name runtime-binary
  echo "$2 --root $work/state-$1 run --bundle $work/bundle b-$1"
}
csd() {
  echo "sh -c '$2 --root $work/state-$1 create --bundle $work/bundle c-$1 && $2 --root $work/state-$1 start c-$1 && $2 --root $work/state-$1 delete --force c-$1'"
}
unshare -m bash -c "
  set -euo pipefail
  mount --make-rprivate /
  umount /sys/fs/cgroup/unified 2>/dev/null || true
  inner run -n berth-runtime \"$(cmds berth "$berth")\" -n crun \"$(cmds crun crun)\" -n runc \"$(cmds runc runc)\"
  inner csd -n berth-runtime \"$(csd berth "$berth")\" -n crun \"$(csd crun crun)\" -n runc \"$(csd runc runc)\"
  for r in berth:$berth crun:crun runc:runc; do
    n=\${r%%:*}; b=\${r#*:}
    for i in 1 2 3 4 5; do /usr/bin/time -f %M \$b --root $work/state-\$n run --bundle $work/bundle m-\$n 2>&1 >/dev/null | tail -1; done | sort -n | tail -1 > $work/rss-\$n
  done
"
inner hybrid -n "berth-runtime (hybrid host)" "$(cmds berth "$berth")"
if [ "${SECCOMP:-0}" = 1 ]; then
  unshare -m bash -c "
    set -euo pipefail
    mount --make-rprivate /
    umount /sys/fs/cgroup/unified 2>/dev/null || true
    inner cold --prepare 'rm -rf $work/state-berth/.seccomp-cache' -n 'berth-runtime (cache emptied)' \"$(cmds berth "$berth")\" \\
      --prepare true -n 'berth-runtime (cache kept)' \"$(cmds berth "$berth")\"
  "
fi
python3 - "$work" <<'PY'
import json, sys, os
w = sys.argv[1]
def med(name):
    return {r["command"]: sorted(r["times"])[len(r["times"]) // 2] * 1000 for r in json.load(open(f"{w}/{name}.json"))["results"]}
run, csd, hyb = med("run"), med("csd"), med("hybrid")
rss = {n: int(open(f"{w}/rss-{n}").read().strip() or 0) for n in ("berth", "crun", "runc")}
print(f"{'runtime':<16}{'run (ms)':>10}{'c+s+d (ms)':>12}{'peak RSS (KB)':>15}")
for n, key in (("berth-runtime", "berth"), ("crun", "crun"), ("runc", "runc")):
    print(f"{n:<16}{run[n]:>10.2f}{csd[n]:>12.2f}{rss[key]:>15}")
print(f"berth-runtime on the hybrid host view: run {list(hyb.values())[0]:.2f} ms")
if os.path.exists(f"{w}/cold.json"):
    cold = med("cold")
    c, k = cold["berth-runtime (cache emptied)"], cold["berth-runtime (cache kept)"]
    print(f"seccomp cache, same hyperfine run: run {c:.2f} ms emptied before each run, {k:.2f} ms kept (kept/emptied {k/c:.2f})")
print(f"ratio berth/crun: run {run['berth-runtime']/run['crun']:.2f}, create+start+delete {csd['berth-runtime']/csd['crun']:.2f}, RSS {rss['berth']/max(rss['crun'],1):.2f}")
print(f"ratio berth/runc: run {run['berth-runtime']/run['runc']:.2f}, create+start+delete {csd['berth-runtime']/csd['runc']:.2f}")
PY
