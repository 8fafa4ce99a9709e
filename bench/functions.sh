#!/usr/bin/env bash
# Functions (issue 14): berth's gateway vs the naive way, in one run.
#  1. Cold invocation: POST to a stdio function (a shell handler, the classic watchdog
#     contract) when it has no instance (--idle-ttl 0ms: each instance is stopped at the
#     gateway's next tick; the driver waits for the instances gauge to read 0 first), RUNS
#     times, p50/p99 — and an http-mode function (busybox httpd) the same way; vs
#     `podman run --rm -i` of the same image and handler per request (PODMAN_RUNS times).
#     Scale-up cold: a --min 1 --concurrency 1 function whose instance is busy: the request
#     starts a second instance, from the parked zygote (`berth-runtime start` only).
#  2. Warm overhead: sequential GETs of a static file from a warm http-mode instance
#     through the gateway vs from inside the instance's network namespace directly
#     (nsenter -n), p50 added latency; `wrk` throughput both ways.
#  3. Burst: 1000 requests at once on a stdio function at --max 8 --queue 200
#     (--concurrency 8, a 50 ms handler): every request answered 200 or 429, none lost.
#  4. Scale to zero: after --idle-ttl no instance process is left; the gateway's RSS idle.
# crun 1.8 refuses hybrid cgroup hosts, so podman runs (as in bench/engine.sh) in a private
# mount namespace where /sys/fs/cgroup/unified is unmounted; berth runs there too.
# Targets (issue 14): cold p50 ≤ 15 ms, p99 ≤ 50 ms, ≤ 0.05 × podman run --rm; warm p50
# added ≤ 0.3 ms, wrk ≥ 0.7 × direct; burst: no request lost.
# Usage: bench/functions.sh [RUNS] [PODMAN_RUNS]   (as root; needs podman, crun, wrk, python3)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-100}
pruns=${2:-30}
for t in podman crun wrk python3 tar nsenter; do command -v $t >/dev/null || { echo "missing $t: run scripts/install-deps.sh" >&2; exit 1; }; done
cargo build --release -q -p berth-runtime -p berth
agent=$(scripts/build-agent.sh)
bin=$PWD/target/release
work=$(mktemp -d /tmp/berth-bench-fn.XXXXXX)
trap 'rm -rf "$work"' EXIT
export work runs pruns bin agent
export drv=$PWD/bench/functions.py
cat >"$work/inner.sh" <<'INNER'
set -euo pipefail
mount --make-rprivate /
ip link set lo up
umount /sys/fs/cgroup/unified 2>/dev/null || true
ulimit -n 8192
export BERTH_RUNTIME=$bin/berth-runtime
B="$bin/berth --root $work/root --runroot $work/run"
ul="--ulimit nofile=1024:1024 --ulimit nproc=1024:1024"
P="podman --root $work/proot --runroot $work/prun --tmpdir $work/ptmp --cgroup-manager cgroupfs --events-backend file --runtime crun"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
gw=http://127.0.0.1:$port
serve_pid=
cleanup() {
  [ -n "$serve_pid" ] && kill -TERM "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null || true
  $P rm -af >/dev/null 2>&1 || true
  $P system reset -f >/dev/null 2>&1 || true
}
trap cleanup EXIT
# One root filesystem (static busybox + the handlers) for berth and podman alike.
"$bin/berth" bundle "$work/bundle" -- /bin/true >/dev/null
r=$work/bundle/rootfs
cat >"$r/handler.sh" <<'EOF'
#!/bin/sh
case "$Http_Query" in sleep=*) sleep "${Http_Query#sleep=}" ;; esac
printf 'hello '
cat
EOF
chmod +x "$r/handler.sh"
mkdir -p "$r/www" "$r/tmp"
echo "hello from httpd" >"$r/www/index.html"
tar -C "$r" -cf "$work/rootfs.tar" .
$B import --cmd /handler.sh "$work/rootfs.tar" fn-echo:1 >/dev/null
$B import --cmd=httpd --cmd=-f --cmd=-p --cmd=8080 --cmd=-h --cmd=/www "$work/rootfs.tar" fn-web:1 >/dev/null
$P import -q "$work/rootfs.tar" localhost/fn-echo:1 >/dev/null
$B fn deploy echo --image fn-echo:1 --mode stdio --idle-ttl 0ms >/dev/null
$B fn deploy web --image fn-web:1 --idle-ttl 0ms >/dev/null
$B fn deploy warm --image fn-web:1 --min 1 --idle-ttl 1h >/dev/null
$B fn deploy zy --image fn-echo:1 --mode stdio --min 1 --concurrency 1 --idle-ttl 0ms >/dev/null
$B fn deploy burst --image fn-echo:1 --mode stdio --max 8 --concurrency 8 --queue 200 --idle-ttl 2s --timeout 60s >/dev/null
$B serve --listen 127.0.0.1:$port --agent "$agent" >"$work/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 100); do curl -fs "$gw/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
echo "load $(cut -d' ' -f1-3 /proc/loadavg)"
# Warm-up: page cache, podman's storage.
python3 "$drv" cold "$gw/function/echo" 3 "$gw/metrics" echo >/dev/null
echo bench | $P run --rm -i $ul localhost/fn-echo:1 /handler.sh >/dev/null
echo "== cold stdio (gateway, no instance)"; python3 "$drv" cold "$gw/function/echo" "$runs" "$gw/metrics" echo
echo "== cold http (gateway, no instance)"; python3 "$drv" cold "$gw/function/web/index.html" "$runs" "$gw/metrics" web GET
echo "== scale-up cold stdio (one instance busy, the next from the parked zygote)"; python3 "$drv" scaleup "$gw/function/zy" "$runs" "$gw/metrics" zy
echo "== podman run --rm -i per request"; python3 "$drv" cmd "$pruns" $P run --rm -i $ul localhost/fn-echo:1 /handler.sh
# Warm: the instance of `warm` (its init is httpd, PID 1 of its namespace).
wpid=
for _ in $(seq 100); do
  # Not the zygote (its container is only created: the runtime's exec.fifo is there).
  for f in $( { grep -l "/berth-fn/fn-warm-" /proc/[0-9]*/cgroup 2>/dev/null || true; } ); do
    p=$(echo "$f" | cut -d/ -f3)
    id=$(grep -o "/berth-fn/fn-warm-[0-9-]*" "$f" | head -1 | cut -d/ -f3)
    [ -e "$work/run/runtime/$id/exec.fifo" ] || { wpid=$p; break; }
  done
  [ -n "$wpid" ] && break; sleep 0.1
done
[ -n "$wpid" ] || { echo "no instance of the warm function" >&2; exit 1; }
python3 "$drv" seq "$gw/function/warm/index.html" 50 >/dev/null
echo "== warm via gateway"; python3 "$drv" seq "$gw/function/warm/index.html" 2000
echo "== warm direct (in the instance's netns)"; nsenter -t "$wpid" -n python3 "$drv" seq "http://127.0.0.1:8080/index.html" 2000
echo "== wrk via gateway"; wrk -t2 -c16 -d5s "$gw/function/warm/index.html" | grep -E "Requests/sec|Latency|Non-2xx|errors" || true
echo "== wrk direct"; nsenter -t "$wpid" -n wrk -t2 -c16 -d5s "http://127.0.0.1:8080/index.html" | grep -E "Requests/sec|Latency|Non-2xx|errors" || true
echo "== burst 1000 at --max 8 --queue 200 (50 ms handler)"
python3 "$drv" burst 127.0.0.1 "$port" "/function/burst?sleep=0.05" 1000
curl -fs "$gw/metrics" | grep -E '^berth_function_(cold_starts_total|instances)\{function="burst"' || true
echo "== scale to zero"
sleep 4
left=$( { grep -lE "/berth-fn/fn-(echo|web|burst)-" /proc/[0-9]*/cgroup 2>/dev/null || true; } | wc -l)
echo "instance processes left (echo, web, burst): $left"
echo "gateway VmRSS kB: $(awk '/^VmRSS:/ {print $2}' /proc/$serve_pid/status)"
INNER
# A network namespace of the bench's own: podman's bridge and the gateway's loopback live there.
unshare -m -n bash ${BENCH_TRACE:+-x} "$work/inner.sh"
