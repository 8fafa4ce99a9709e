# The set-up the engine benchmarks share (bench/{engine,pod,pods,network,dockerapi}.sh),
# sourced twice: by the script, and by the inner.sh it runs under `unshare -m -n` (a
# network and mount namespace of the bench's own: bridges, firewall rules and NAT of every
# tool measured are made there, never in the host's).
#
# In the script:
#   bench_need TOOL…      each TOOL on PATH (or an executable path), or exit naming it
#   bench_build PKG…      bin: BIN=DIR as it is, or target/$BENCH_PROFILE (release; debug),
#                         PKGs built there first unless BENCH_NO_BUILD=1; sets profile, bin
#   bench_work NAME       work: a fresh /tmp/berth-bench-NAME.XXXXXX
#   bench_inner           runs $work/inner.sh in the new namespaces (BENCH_TRACE=1: bash -x)
# In inner.sh (its first line: `. "$bench_lib"`):
#   bench_ns [keep-unified]  private mounts, lo up and, unless keep-unified, cgroup v2's
#                         /sys/fs/cgroup/unified unmounted (crun 1.8 refuses hybrid hosts;
#                         berth runs there too, for the same view); sets B, P, ul
#   now                   the time in ns
#   bench_import NAME     a busybox-static root (`berth bundle`) as $work/rootfs.tar, imported
#                         into berth as NAME and into podman as localhost/bench:1
#   bench_dockerd         Debian's dockerd on $work/docker.sock (data and exec roots of its
#                         own): D the client, dpid; returns 1 when docker.io is not installed
#   bench_dockerd_stop    stops it (if started)

bench_lib=$(realpath "${BASH_SOURCE[0]}")
export bench_lib

bench_need() {
  local t
  for t in "$@"; do
    [ -x "$t" ] || command -v "$t" >/dev/null || { echo "missing $t: run scripts/install-deps.sh" >&2; exit 1; }
  done
}

bench_build() {
  profile=${BENCH_PROFILE:-release}
  if [ -n "${BIN:-}" ]; then
    bin=$(cd "$BIN" && pwd)
    return
  fi
  if [ -z "${BENCH_NO_BUILD:-}" ]; then
    local pkgs=() p
    for p in "$@"; do pkgs+=(-p "$p"); done
    if [ "$profile" = release ]; then
      cargo build --release -q "${pkgs[@]}"
    else
      cargo build -q "${pkgs[@]}"
    fi
  fi
  bin=$PWD/target/$profile
}

bench_work() {
  work=$(mktemp -d "/tmp/berth-bench-$1.XXXXXX")
}

bench_inner() {
  unshare -m -n bash ${BENCH_TRACE:+-x} "$work/inner.sh"
}

bench_ns() {
  mount --make-rprivate /
  ip link set lo up
  [ "${1:-}" = keep-unified ] || umount /sys/fs/cgroup/unified 2>/dev/null || true
  B="$bin/berth --root $work/root --runroot $work/run"
  P="podman --root $work/proot --runroot $work/prun --tmpdir $work/ptmp --cgroup-manager cgroupfs --events-backend file --runtime crun"
  # crun may not raise the hard limits of this session to podman's defaults.
  ul="--ulimit nofile=1024:1024 --ulimit nproc=1024:1024"
}

now() { date +%s%N; }

bench_import() {
  "$bin/berth" bundle "$work/bundle" -- /bin/true >/dev/null
  tar -C "$work/bundle/rootfs" -cf "$work/rootfs.tar" .
  $B import "$work/rootfs.tar" "$1" >/dev/null
  $P import -q "$work/rootfs.tar" localhost/bench:1 >/dev/null
}

bench_dockerd() {
  D="" dpid=""
  [ -x /usr/sbin/dockerd ] && [ -x /usr/bin/docker ] || return 1
  /usr/sbin/dockerd --host "unix://$work/docker.sock" --data-root "$work/docker" \
    --exec-root "$work/dexec" --pidfile "$work/docker.pid" >"$work/dockerd.log" 2>&1 &
  dpid=$!
  D="/usr/bin/docker -H unix://$work/docker.sock"
  for _ in $(seq 300); do $D version >/dev/null 2>&1 && break; sleep 0.1; done
}

bench_dockerd_stop() {
  [ -n "${dpid:-}" ] || return 0
  kill -TERM "$dpid" 2>/dev/null || true
  wait "$dpid" 2>/dev/null || true
  dpid=""
}
