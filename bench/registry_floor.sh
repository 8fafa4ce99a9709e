#!/usr/bin/env bash
# The floor under bench/registry.sh's skopeo numbers: the same skopeo push and pull of the
# same ~105 MB image against berth, docker-registry and bench/nullreg.go (a server that
# stores nothing, hashes nothing and sends pulled blobs by sendfile), a fresh server per
# run, the three alternating. Prints per-run times and medians.
# Usage: bench/registry_floor.sh [RUNS]   (needs go, skopeo, docker-registry, python3)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-7}
cargo build --release -q -p berth
berth=$PWD/target/release/berth
work=$(mktemp -d /tmp/berth-regfloor.XXXXXX)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
GO111MODULE=off go build -o "$work/nullreg" bench/nullreg.go
# The image of bench/registry.sh.
sed -n '/^python3 - "\$work\/img" <<.PY.$/,/^PY$/p' bench/registry.sh > "$work/gen.sh"
. "$work/gen.sh"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ms() { echo $(( $(date +%s%N) / 1000000 )); }
declare -A P Q
for i in $(seq "$runs"); do
  for kind in berth docker-registry null; do
    d=$work/$kind-$i; mkdir -p "$d"; port=$(free_port)
    case $kind in
      berth) BERTH_LOG=warn "$berth" registry serve --listen "127.0.0.1:$port" --root "$d/root" >/dev/null 2>&1 & ;;
      docker-registry)
        printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:%s\n' "$d/root" "$port" > "$d/config.yml"
        docker-registry serve "$d/config.yml" >/dev/null 2>&1 & ;;
      null) "$work/nullreg" "127.0.0.1:$port" "$work/img/blobs/sha256" & ;;
    esac
    pid=$!
    for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/v2/" && break; sleep 0.05; done
    t0=$(ms); skopeo --insecure-policy copy -q --dest-tls-verify=false "oci:$work/img:v1" "docker://127.0.0.1:$port/bench/img:v1"; t1=$(ms)
    skopeo --insecure-policy copy -q --src-tls-verify=false "docker://127.0.0.1:$port/bench/img:v1" "oci:$d/pulled:v1"; t2=$(ms)
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
    rm -rf "$d"
    P[$kind]+="$((t1 - t0)) "; Q[$kind]+="$((t2 - t1)) "
  done
done
med() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
for kind in berth docker-registry null; do
  echo "$kind skopeo push ms: ${P[$kind]}(median $(echo "${P[$kind]}" | med)); pull ms: ${Q[$kind]}(median $(echo "${Q[$kind]}" | med))"
done
