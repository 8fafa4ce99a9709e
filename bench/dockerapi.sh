#!/usr/bin/env bash
# The Docker Engine API (issue 15, first slice): what the API adds over berth's own CLI, in
# one run. Debian's docker CLI (docker.io, client only) on `berth serve --docker-socket`:
# `docker run -d --network none IMAGE sleep 1000` and `docker rm -f ID`, each timed (RUNS
# times, medians), vs `berth run -d …` and `berth rm -f …` on the same store. Both go through
# the same engine; the difference is the API (the docker client's start-up, its version
# negotiation, HTTP on the socket, serve's dispatch). dockerd itself (the issue's peer) is
# not measured yet.
# Usage: bench/dockerapi.sh [RUNS]   (as root; BIN=DIR uses berth binaries from DIR instead
# of building release ones)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
docker=/usr/bin/docker
for t in $docker tar; do command -v $t >/dev/null || { echo "missing $t: run scripts/install-deps.sh" >&2; exit 1; }; done
if [ -z "${BIN:-}" ]; then
  cargo build --release -q -p berth-runtime -p berth -p berth-engine
  BIN=$PWD/target/release
fi
bin=$(cd "$BIN" && pwd)
work=$(mktemp -d /tmp/berth-bench-dockerapi.XXXXXX)
export BERTH_RUNTIME=$bin/berth-runtime
B="$bin/berth --root $work/root --runroot $work/run"
serve_pid=
cleanup() {
  $B system reset -f >/dev/null 2>&1 || true
  [ -n "$serve_pid" ] && kill -TERM "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
now() { date +%s%N; }
"$bin/berth" bundle "$work/bundle" -- /bin/true >/dev/null
tar -C "$work/bundle/rootfs" -cf "$work/rootfs.tar" .
$B import "$work/rootfs.tar" bench:1 >/dev/null
$B serve --docker-socket "$work/docker.sock" 2>"$work/serve.log" &
serve_pid=$!
for _ in $(seq 100); do [ -S "$work/docker.sock" ] && break; sleep 0.05; done
export DOCKER_HOST=unix://$work/docker.sock DOCKER_CONFIG=$work/docker-config
# Warm-up: the snapshot unpacked, the page cache warm for both clients.
for _ in 1 2 3; do
  id=$($B run -d --network none bench:1 sleep 1000); $B rm -f "$id" >/dev/null
  id=$($docker run -d --network none bench:1 sleep 1000); $docker rm -f "$id" >/dev/null
done
: >"$work/times"
for i in $(seq "$runs"); do
  t0=$(now); id=$($B run -d --network none bench:1 sleep 1000); t1=$(now)
  $B rm -f "$id" >/dev/null; t2=$(now)
  echo "berth-cli run-d $(( (t1 - t0) / 1000 ))" >>"$work/times"
  echo "berth-cli rm-f $(( (t2 - t1) / 1000 ))" >>"$work/times"
  t0=$(now); id=$($docker run -d --network none bench:1 sleep 1000); t1=$(now)
  $docker rm -f "$id" >/dev/null; t2=$(now)
  echo "docker-api run-d $(( (t1 - t0) / 1000 ))" >>"$work/times"
  echo "docker-api rm-f $(( (t2 - t1) / 1000 ))" >>"$work/times"
done
median() { grep "^$1 $2 " "$work/times" | awk '{print $3}' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for op in run-d rm-f; do
  c=$(median berth-cli $op); d=$(median docker-api $op)
  awk -v op="$op" -v c="$c" -v d="$d" 'BEGIN { printf "%-6s berth CLI %8.1f ms   docker CLI on berth serve %8.1f ms   ratio %.2f\n", op, c/1000, d/1000, d/c }'
done
echo "runs=$runs load: $(cut -d' ' -f1-3 /proc/loadavg)"
