#!/usr/bin/env bash
# berth's main job as it stands, on a fresh Debian 12 machine as root: install what berth
# needs, build berth, build the example image from examples/hello/Containerfile and run it
# (in the foreground, then as a detached service with its logs, then as a function behind
# the gateway), make a microVM root disk of it (`berth vm image`), push it to a registry served by berth
# on loopback, remove it, pull it back and run it again; then run a bare busybox bundle
# with berth-runtime.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo build --release --workspace
agent=$(bash scripts/build-agent.sh)   # the static guest agent for `berth vm image`
root=$(mktemp -d /tmp/berth-demo.XXXXXX)
reg_pid=
gw_pid=
cleanup() {
  [ -n "$reg_pid" ] && kill "$reg_pid" 2>/dev/null || true
  [ -n "$gw_pid" ] && kill "$gw_pid" 2>/dev/null && wait "$gw_pid" 2>/dev/null || true
  ./target/release/berth --root "$root/store" --runroot "$root/run" rm -f hello-svc >/dev/null 2>&1 || true
  rm -rf "$root"
}
trap cleanup EXIT
export HOME=$root/home XDG_CONFIG_HOME=$root/home/.config XDG_CACHE_HOME=$root/home/.cache
berth() { ./target/release/berth --root "$root/store" --runroot "$root/run" "$@"; }

# Build and run. The example's base stage is FROM scratch + COPY busybox.
cp /bin/busybox examples/hello/busybox
berth build -t hello examples/hello
berth run --rm hello

# The same image as a detached service: its monitor keeps it (and its log) after this
# command returns; list it, wait for it, read its log, remove it.
berth run -d --name hello-svc hello
berth ps -a
berth wait hello-svc
berth logs -t hello-svc
berth rm hello-svc

# The same image as a function: deployed (its layers unpacked now), served by the gateway
# in `berth serve --listen` on loopback, invoked through it (stdio mode: one process per
# request in an instance started on demand), then the gateway stops every instance.
berth fn deploy hello --image hello --mode stdio --idle-ttl 30s
gw_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
BERTH_LOG=warn ./target/release/berth --root "$root/store" --runroot "$root/run" serve \
  --listen "127.0.0.1:$gw_port" --agent "$agent" &
gw_pid=$!
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$gw_port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
berth fn invoke hello --gateway "http://127.0.0.1:$gw_port" --data ''
berth fn ls
kill "$gw_pid"; wait "$gw_pid" || true; gw_pid=
berth fn rm hello

# The same image as a microVM root disk (ext4 with berth's static guest agent as init; no
# kernel is booted here).
./target/release/berth vm image --store "$root/store" --agent "$agent" hello -o "$root/hello.ext4"
echo "VM disk: $(du -h --apparent-size "$root/hello.ext4" | cut -f1) ($(du -h "$root/hello.ext4" | cut -f1) allocated)"

# A registry on loopback (an ephemeral port), push, remove, pull back, run.
coproc REG { BERTH_LOG=warn exec ./target/release/berth registry serve --listen 127.0.0.1:0 --root "$root/registry"; }
reg_pid=$REG_PID
read -r line <&"${REG[0]}"
addr=${line#listening on }
echo "registry: $addr"
berth push --tls-verify=false hello "$addr/demo/hello:v1"
berth rmi hello
berth pull --tls-verify=false "$addr/demo/hello:v1"
berth run --rm "$addr/demo/hello:v1"

# The runtime on its own: a bundle made by `berth bundle`.
./target/release/berth bundle "$root/bundle" -- sh -c 'echo "hello from berth-runtime: pid $$ on $(hostname)"'
./target/release/berth-runtime run --bundle "$root/bundle" "demo-$$"
