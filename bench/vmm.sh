#!/usr/bin/env bash
# berth's VMM vs qemu -M microvm, in one run, booting the same payload: the test guest
# (tests/guest/guest.asm, a PVH ELF that prints a few lines on the serial port and writes
# the debug-exit port). Measures:
#   start -> first serial byte, start -> guest exit   (python, RUNS runs each, medians)
#   start -> exit                                      (hyperfine -N, RUNS runs)
#   VMM memory overhead: peak RSS minus resident guest pages (berth: --stats reads VmHWM
#     and the guest mapping's Rss in /proc/self/smaps; qemu: GNU time %M minus the same
#     guest pages, the payload being identical)
#   snapshot restore to running vs a fresh start to running (`-d`, until the monitor is up),
#     for the test guest and for a Linux guest snapshotted early in its boot
# Usage: bench/vmm.sh [RUNS]   (as root; needs /dev/kvm, hyperfine, qemu-system-x86, nasm)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
for t in hyperfine qemu-system-x86_64 nasm ld python3; do
  command -v $t >/dev/null || { echo "missing $t: run scripts/install-deps.sh" >&2; exit 1; }
done
[ -e /dev/kvm ] || { echo "this benchmark needs /dev/kvm" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "missing /usr/bin/time (apt-get install time)" >&2; exit 1; }
cargo build --release -q -p berth
berth=$PWD/target/release/berth
work=$(mktemp -d /tmp/berth-vmm-bench.XXXXXX)
root=$work/root
cleanup() {
  for n in $(ls "$root" 2>/dev/null); do "$berth" vm --root "$root" kill "$n" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT
nasm -f elf64 -I tests/guest/ -o "$work/guest.o" tests/guest/guest.asm
ld -m elf_x86_64 --no-warn-rwx-segments -T tests/guest/guest.ld -o "$work/guest.elf" "$work/guest.o"
guest=$work/guest.elf

b_cmd="$berth vm --root $root run --kernel $guest --memory 64 --cmdline bench"
q_cmd="qemu-system-x86_64 -M microvm,x-option-roms=off,isa-serial=on,rtc=off -enable-kvm -cpu host,-arch-capabilities -m 64 -nodefaults -no-user-config -nographic -device isa-debug-exit,iobase=0xf4,iosize=4 -kernel $guest"

# Start -> exit, hyperfine.
hyperfine -N --warmup 3 --runs "$runs" --export-json "$work/exit.json" \
  -n berth "$b_cmd" -n "qemu microvm" "$q_cmd -serial null" -i >"$work/exit.log" 2>&1 \
  || { cat "$work/exit.log" >&2; exit 1; }

# Start -> first serial byte and -> exit, from the outside.
python3 - "$runs" "$b_cmd" "$q_cmd -serial stdio" >"$work/first.json" <<'PY'
import json, shlex, subprocess, sys, time
runs, cmds = int(sys.argv[1]), {"berth": sys.argv[2], "qemu": sys.argv[3]}
out = {}
for name, cmd in cmds.items():
    firsts, exits = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        p = subprocess.Popen(shlex.split(cmd), stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        p.stdout.read(1)
        t1 = time.perf_counter()
        p.stdout.read()
        p.wait()
        t2 = time.perf_counter()
        firsts.append((t1 - t0) * 1000)
        exits.append((t2 - t0) * 1000)
    out[name] = {"first": sorted(firsts)[runs // 2], "exit": sorted(exits)[runs // 2]}
json.dump(out, sys.stdout)
PY

# Memory.
for i in 1 2 3 4 5; do $b_cmd --stats 2>&1 >/dev/null | grep berth-vm-stats; done >"$work/bstats"
# qemu exits 1 after a debug-exit write of 0 ((0 << 1) | 1).
for i in 1 2 3 4 5; do { /usr/bin/time -f %M $q_cmd -serial null 2>&1 >/dev/null || true; } | tail -1; done >"$work/qrss"
for i in 1 2 3 4 5; do /usr/bin/time -f %M $b_cmd 2>&1 >/dev/null | tail -1; done >"$work/brss"

# Restore vs fresh start, to running (the monitor answers on its socket).
"$berth" vm --root "$root" run -d --name snapsrc --kernel "$guest" --memory 64 --cmdline tick >/dev/null
sleep 0.5
"$berth" vm --root "$root" snapshot snapsrc "$work/snap"
"$berth" vm --root "$root" kill snapsrc
hyperfine -N --warmup 2 --runs "$runs" --export-json "$work/restore.json" \
  --prepare "sh -c '$berth vm --root $root kill r >/dev/null 2>&1; $berth vm --root $root kill f >/dev/null 2>&1; true'" \
  -n "restore -d" "$berth vm --root $root restore -d --name r $work/snap" \
  -n "run -d" "$berth vm --root $root run -d --name f --kernel $guest --memory 64 --cmdline tick" \
  >"$work/restore.log" 2>&1 || { cat "$work/restore.log" >&2; exit 1; }

# Linux: restore to running vs a fresh boot to the same guest state. The guest kernel of
# scripts/build-guest-kernel.sh boots until its console shows "pid_max" (a point early in
# boot); the VM is snapshotted there, and restores of that snapshot are timed until the
# monitor runs. Skipped with BENCH_LINUX=0.
if [ "${BENCH_LINUX:-1}" = 1 ]; then
  kdir=$(bash scripts/build-guest-kernel.sh)
  mkdir -p "$work/ir/bin"
  cp /bin/busybox "$work/ir/bin/"
  printf '#!/bin/busybox sh\n/bin/busybox reboot -f\n' >"$work/ir/init"
  chmod +x "$work/ir/init"
  (cd "$work/ir" && find . | cpio -o -H newc --quiet >"$work/ir.cpio")
  lcmd="console=ttyS0 reboot=k panic=-1 noxsave nofsgsbase clearcpuid=smap,cx16,popcnt,bmi1,bmi2,movbe,rdrand,rdseed,avx2,avx,abm"
  t0=$(date +%s%N)
  "$berth" vm --root "$root" run -d --name lx --memory 256 --kernel "$kdir/vmlinux" --initrd "$work/ir.cpio" --cmdline "$lcmd" >/dev/null
  until grep -q pid_max "$root/lx/console.log" 2>/dev/null; do sleep 0.05; done
  t1=$(date +%s%N)
  echo $(( (t1 - t0) / 1000 )) >"$work/lx-fresh-us"
  "$berth" vm --root "$root" snapshot lx "$work/lx.snap"
  "$berth" vm --root "$root" kill lx
  for i in 1 2 3 4 5; do
    t0=$(date +%s%N)
    "$berth" vm --root "$root" restore -d --name lxr "$work/lx.snap" >/dev/null
    t1=$(date +%s%N)
    echo $(( (t1 - t0) / 1000 ))
    "$berth" vm --root "$root" kill lxr
  done | sort -n | sed -n 3p >"$work/lx-restore-us"
fi

python3 - "$work" <<'PY'
import json, sys
w = sys.argv[1]
def med(name):
    return {r["command"]: sorted(r["times"])[len(r["times"]) // 2] * 1000 for r in json.load(open(f"{w}/{name}.json"))["results"]}
ex, rs = med("exit"), med("restore")
first = json.load(open(f"{w}/first.json"))
stats = [dict(kv.split("=") for kv in l.split()[1:]) for l in open(f"{w}/bstats")]
guest = sorted(int(s["guest_rss_kib"]) for s in stats)[len(stats) // 2]
b_over = sorted(int(s["overhead_kib"]) for s in stats)[len(stats) // 2]
q_rss = sorted(int(x) for x in open(f"{w}/qrss").read().split())[2]
b_rss = sorted(int(x) for x in open(f"{w}/brss").read().split())[2]
print(f"{'':<28}{'berth':>12}{'qemu microvm':>14}{'ratio':>8}")
print(f"{'start -> exit (hyperfine)':<28}{ex['berth']:>9.2f} ms{ex['qemu microvm']:>11.2f} ms{ex['berth'] / ex['qemu microvm']:>8.3f}")
print(f"{'start -> first serial byte':<28}{first['berth']['first']:>9.2f} ms{first['qemu']['first']:>11.2f} ms{first['berth']['first'] / first['qemu']['first']:>8.3f}")
print(f"{'start -> exit (outside)':<28}{first['berth']['exit']:>9.2f} ms{first['qemu']['exit']:>11.2f} ms{first['berth']['exit'] / first['qemu']['exit']:>8.3f}")
print(f"{'peak RSS (GNU time)':<28}{b_rss:>9} KB{q_rss:>11} KB{b_rss / q_rss:>8.3f}")
print(f"{'overhead (RSS - guest)':<28}{b_over:>9} KB{q_rss - guest:>11} KB{b_over / (q_rss - guest):>8.3f}   (guest pages resident: {guest} KB)")
print(f"{'restore -d to running':<28}{rs['restore -d']:>9.2f} ms")
print(f"{'run -d to running':<28}{rs['run -d']:>9.2f} ms{'':>14}{rs['restore -d'] / rs['run -d']:>8.3f}")
import os
if os.path.exists(f"{w}/lx-restore-us"):
    fresh = int(open(f"{w}/lx-fresh-us").read()) / 1000
    restore = int(open(f"{w}/lx-restore-us").read()) / 1000
    print(f"{'Linux: boot to snapshot point':<28}{fresh:>9.0f} ms")
    print(f"{'Linux: restore -d to running':<28}{restore:>9.2f} ms{'':>14}{restore / fresh:>8.4f}")
PY
