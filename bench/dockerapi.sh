#!/usr/bin/env bash
# The Docker Engine API (issue 15): berth serve's Docker socket vs Debian's dockerd, in one
# run, inside a network and mount namespace of the bench's own (`unshare -m -n`: berth's and
# dockerd's bridges and firewall rules are made there, never in the host's).
#  1. `docker run --rm IMAGE true` through each socket (RUNS times, medians) — while berth
#     serve has no attach endpoint (POST /containers/{id}/attach answers 404), `docker run -d
#     IMAGE true` + `docker rm -f ID` instead, on both, so the ratio compares the same work.
#  2. `docker-compose up -d` + `docker-compose down -v` of tests/fixtures/compose (three
#     services, one built, a user network, a published port, a named volume; COMPOSE_RUNS
#     times, medians), the web image built once in a warm-up round on each.
# The image is a busybox-static root filesystem imported as `busybox` into both.
# Target (issue 15): berth ≤ 0.2 × dockerd for both.
# Usage: bench/dockerapi.sh [RUNS] [COMPOSE_RUNS]   (as root; BIN=DIR uses berth binaries
# from DIR instead of building release ones; BENCH_PROFILE, BENCH_NO_BUILD: bench/lib.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
compose_runs=${2:-5}
. bench/lib.sh
bench_need /usr/bin/docker /usr/sbin/dockerd /usr/bin/docker-compose /bin/busybox curl tar python3
bench_build berth-runtime berth berth-engine
project=$PWD/tests/fixtures/compose
bench_work dockerapi
export work runs compose_runs bin project
trap 'rm -rf "$work"' EXIT
cat >"$work/inner.sh" <<'INNER'
. "$bench_lib"
set -euo pipefail
bench_ns keep-unified
export BERTH_RUNTIME=$bin/berth-runtime
serve_pid=
cleanup() {
  $B system reset -f >/dev/null 2>&1 || true
  [ -n "$serve_pid" ] && { kill -TERM "$serve_pid" 2>/dev/null; wait "$serve_pid" 2>/dev/null; } || true
  bench_dockerd_stop
}
trap cleanup EXIT
# A busybox root filesystem (sh, httpd, wget… as applet links).
mkdir -p "$work/rootfs/bin" "$work/rootfs/etc" "$work/rootfs/tmp" "$work/rootfs/proc" "$work/rootfs/sys" "$work/rootfs/dev"
cp /bin/busybox "$work/rootfs/bin/busybox"
for a in $(/bin/busybox --list); do [ -e "$work/rootfs/bin/$a" ] || ln -s busybox "$work/rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$work/rootfs/etc/passwd"
echo 'root:x:0:' >"$work/rootfs/etc/group"
tar -C "$work/rootfs" --numeric-owner -cf "$work/rootfs.tar" .
$B import --cmd sh "$work/rootfs.tar" busybox >/dev/null
$B serve --docker-socket "$work/berth.sock" 2>"$work/serve.log" &
serve_pid=$!
bench_dockerd
for _ in $(seq 300); do [ -S "$work/berth.sock" ] && break; sleep 0.1; done
/usr/bin/docker -H "unix://$work/docker.sock" import -c 'CMD ["sh"]' "$work/rootfs.tar" busybox >/dev/null
export DOCKER_CONFIG=$work/docker-config DOCKER_BUILDKIT=0
# Whether berth serve has the attach endpoint (a 404 "not part of" means it has not).
if curl -s --unix-socket "$work/berth.sock" -X POST "http://x/v1.41/containers/none/attach" | grep -q "not part of"; then
  mode=detached
else
  mode=rm
fi
echo "mode $mode 0" >>"$work/times"
one_run() { # $1 socket
  if [ "$mode" = rm ]; then
    /usr/bin/docker -H "unix://$1" run --rm --network none busybox true
  else
    id=$(/usr/bin/docker -H "unix://$1" run -d --network none busybox true)
    /usr/bin/docker -H "unix://$1" rm -f "$id" >/dev/null
  fi
}
cp -r "$project" "$work/proj"
up_down() { # $1 socket, $2 tag for the times file (empty: warm-up)
  local t0 t1 t2
  t0=$(now)
  DOCKER_HOST="unix://$1" /usr/bin/docker-compose -p bench -f "$work/proj/docker-compose.yml" up -d >>"$work/compose.log" 2>&1
  t1=$(now)
  DOCKER_HOST="unix://$1" /usr/bin/docker-compose -p bench -f "$work/proj/docker-compose.yml" down -v >>"$work/compose.log" 2>&1
  t2=$(now)
  [ -n "$2" ] && echo "$2 compose-up $(( (t1 - t0) / 1000 ))" >>"$work/times"
  [ -n "$2" ] && echo "$2 compose-down $(( (t2 - t1) / 1000 ))" >>"$work/times"
  [ -n "$2" ] && echo "$2 compose-up+down $(( (t2 - t0) / 1000 ))" >>"$work/times"
  return 0
}
for s in berth docker; do
  for _ in 1 2 3; do one_run "$work/$s.sock"; done
  up_down "$work/$s.sock" ""
done
for i in $(seq "$runs"); do
  for s in berth docker; do
    t0=$(now); one_run "$work/$s.sock"; t1=$(now)
    echo "$s run $(( (t1 - t0) / 1000 ))" >>"$work/times"
  done
done
for i in $(seq "$compose_runs"); do
  for s in berth docker; do up_down "$work/$s.sock" "$s"; done
done
INNER
bench_inner
python3 - "$work/times" <<'PY'
import sys, collections
t = collections.defaultdict(list); mode = "?"
for line in open(sys.argv[1]):
    f = line.split()
    if f[0] == "mode":
        mode = f[1]
        continue
    t[(f[0], f[1])].append(int(f[2]) / 1000)
med = {k: sorted(v)[len(v) // 2] for k, v in t.items()}
what = {"run": "docker run --rm busybox true" if mode == "rm" else "docker run -d busybox true + rm -f"}
for op in ["run", "compose-up", "compose-down", "compose-up+down"]:
    b, d = med[("berth", op)], med[("docker", op)]
    label = what.get(op, f"docker-compose {op}")
    target = f"   (target <= 0.2: {'met' if b / d <= 0.2 else 'NOT met'})" if op in ("run", "compose-up+down") else ""
    print(f"{label:<40} berth {b:9.1f} ms   dockerd {d:9.1f} ms   ratio {b / d:6.3f}{target}   (median of {len(t[('berth', op)])})")
PY
echo "runs=$runs compose_runs=$compose_runs load: $(cut -d' ' -f1-3 /proc/loadavg)"
