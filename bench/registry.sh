#!/usr/bin/env bash
# berth's registry vs Debian's docker-registry (distribution 2.8), in one run, on loopback:
#   push and pull of a ~105 MB three-layer image with skopeo (median of RUNS; each run
#   against a fresh, empty server so every blob moves; the two servers alternate)
#   the same three layers moved with curl (the servers' share, without skopeo's own work)
#   push and pull with berth's own client (`berth push`/`berth pull`) against each server
#   manifest GET with `wrk -t2 -c32 -d10s` (req/s, p99 latency)
#   1 MiB blob GET with the same wrk settings (req/s, p99 latency)
# Usage: bench/registry.sh [RUNS]   (needs skopeo, docker-registry, wrk, curl, python3)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
for t in skopeo docker-registry wrk curl python3; do
  command -v $t >/dev/null || { echo "missing $t: run scripts/install-deps.sh" >&2; exit 1; }
done
cargo build --release -q -p berth
berth=$PWD/target/release/berth
work=$(mktemp -d /tmp/berth-regbench.XXXXXX)

cleanup() { stop_all; rm -rf "$work"; }
trap cleanup EXIT

# The image: three gzip layers of incompressible data (60 + 35 + 10 MB).
python3 - "$work/img" <<'PY'
import gzip, hashlib, io, json, os, sys, tarfile
d = sys.argv[1]; os.makedirs(f"{d}/blobs/sha256")
def put(b):
    h = hashlib.sha256(b).hexdigest(); open(f"{d}/blobs/sha256/{h}", "wb").write(b); return "sha256:" + h
layers = []
for i, mb in enumerate((60, 35, 10)):
    data = os.urandom(mb * 1000 * 1000); bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode="w") as t:
        ti = tarfile.TarInfo(f"layer{i}.bin"); ti.size = len(data); t.addfile(ti, io.BytesIO(data))
    raw = bio.getvalue(); gz = gzip.compress(raw, 1, mtime=0)
    layers.append((put(gz), len(gz), "sha256:" + hashlib.sha256(raw).hexdigest()))
cfg = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [l[2] for l in layers]}}).encode()
m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(cfg), "size": len(cfg)},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": g, "size": s} for g, s, _ in layers]}).encode()
md = put(m)
open(f"{d}/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
open(f"{d}/index.json", "w").write(json.dumps({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": len(m), "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}))
PY
head -c 1048576 /dev/urandom > "$work/blob1m"
blob_digest=sha256:$(sha256sum "$work/blob1m" | cut -d' ' -f1)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do curl -s -o /dev/null "http://$1/v2/" && return 0; sleep 0.1; done; echo "server $1 did not start" >&2; exit 1; }

start() {  # kind dir -> prints address; pid appended to $work/pids
  local kind=$1 dir=$2 port; port=$(free_port)
  mkdir -p "$dir"
  if [ "$kind" = berth ]; then
    BERTH_LOG=warn "$berth" registry serve --listen "127.0.0.1:$port" --root "$dir/root" >/dev/null 2>"$dir/log" &
  else
    printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:%s\n' "$dir/root" "$port" > "$dir/config.yml"
    docker-registry serve "$dir/config.yml" >/dev/null 2>"$dir/log" &
  fi
  echo $! >> "$work/pids"
  wait_port "127.0.0.1:$port"
  echo "127.0.0.1:$port"
}
stop_all() { if [ -f "$work/pids" ]; then while read -r p; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done < "$work/pids"; rm -f "$work/pids"; fi; }
ms() { echo $(( $(date +%s%N) / 1000000 )); }

# Raw transfer of the three layers with curl (one POST + PUT per layer, then GETs): the
# servers' own share of a push and a pull, without skopeo's client-side work.
layers=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1]+"/index.json"))["manifests"][0]["digest"].split(":")[1]; print(" ".join(l["digest"] for l in json.load(open(sys.argv[1]+"/blobs/sha256/"+m))["layers"]))' "$work/img")
upload() {  # addr repo file digest
  local loc sep
  loc=$(curl -s -o /dev/null -D - -X POST "http://$1/v2/$2/blobs/uploads/" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
  case $loc in http*) ;; *) loc="http://$1$loc" ;; esac
  case $loc in *\?*) sep='&' ;; *) sep='?' ;; esac
  curl -sf -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$3" "$loc${sep}digest=$4"
}
median() { sort -n | sed -n "$(( (runs + 1) / 2 ))p"; }

declare -A push pull rawput rawget bpush bpull mrps mp99 brps bp99
for kind in berth docker-registry; do
  for m in push pull rawput rawget bpush bpull; do : > "$work/$m-$kind"; done
done
for i in $(seq "$runs"); do
  # Alternate the order so a change in machine load does not favour one server.
  if [ $((i % 2)) -eq 1 ]; then order="berth docker-registry"; else order="docker-registry berth"; fi
  for kind in $order; do
    addr=$(start "$kind" "$work/$kind-$i")
    t0=$(ms); skopeo --insecure-policy copy -q --dest-tls-verify=false "oci:$work/img:v1" "docker://$addr/bench/img:v1"; t1=$(ms)
    skopeo --insecure-policy copy -q --src-tls-verify=false "docker://$addr/bench/img:v1" "oci:$work/pulled:v1"; t2=$(ms)
    echo $((t1 - t0)) >> "$work/push-$kind"; echo $((t2 - t1)) >> "$work/pull-$kind"
    rm -rf "$work/pulled"
    t0=$(ms); for l in $layers; do upload "$addr" raw/img "$work/img/blobs/sha256/${l#sha256:}" "$l"; done; t1=$(ms)
    for l in $layers; do curl -sf -o /dev/null "http://$addr/v2/raw/img/blobs/$l"; done; t2=$(ms)
    echo $((t1 - t0)) >> "$work/rawput-$kind"; echo $((t2 - t1)) >> "$work/rawget-$kind"
    # berth's own client (a fresh HOME: no credentials, no blob-location cache).
    h=$work/home-$kind-$i
    t0=$(ms); HOME=$h XDG_CACHE_HOME=$h/.cache "$berth" push --tls-verify=false --layout "$work/img:v1" "$addr/client/img:v1" >/dev/null 2>&1; t1=$(ms)
    HOME=$h XDG_CACHE_HOME=$h/.cache "$berth" pull --tls-verify=false "$addr/client/img:v1" --layout "$work/bpulled" >/dev/null 2>&1; t2=$(ms)
    echo $((t1 - t0)) >> "$work/bpush-$kind"; echo $((t2 - t1)) >> "$work/bpull-$kind"
    rm -rf "$work/bpulled" "$h"
    stop_all; rm -rf "$work/$kind-$i"
  done
done

wrk_run() {  # url header -> "rps p99ms"
  wrk -t2 -c32 -d10s --latency -H "$2" "$1" > "$work/wrk.out"
  python3 - "$work/wrk.out" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
m = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", t, re.M)
p99 = float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
if non2xx: sys.exit(f"wrk saw {non2xx.group(1)} error responses:\n{t}")
print(f"{rps:.0f} {p99:.2f}")
PY
}
for kind in berth docker-registry; do
  push[$kind]=$(median < "$work/push-$kind"); pull[$kind]=$(median < "$work/pull-$kind")
  rawput[$kind]=$(median < "$work/rawput-$kind"); rawget[$kind]=$(median < "$work/rawget-$kind")
  bpush[$kind]=$(median < "$work/bpush-$kind"); bpull[$kind]=$(median < "$work/bpull-$kind")
  addr=$(start "$kind" "$work/$kind-wrk")
  skopeo --insecure-policy copy -q --dest-tls-verify=false "oci:$work/img:v1" "docker://$addr/bench/img:v1"
  upload "$addr" bench/img "$work/blob1m" "$blob_digest"
  read -r mrps[$kind] mp99[$kind] < <(wrk_run "http://$addr/v2/bench/img/manifests/v1" "Accept: application/vnd.oci.image.manifest.v1+json")
  read -r brps[$kind] bp99[$kind] < <(wrk_run "http://$addr/v2/bench/img/blobs/$blob_digest" "Accept: */*")
  stop_all
done

b=berth; d=docker-registry
printf '%-16s %8s %8s %8s %8s %8s %8s %12s %9s %12s %9s\n' server "skopeo" "skopeo" "raw" "raw" "berth" "berth" "manifest" "manifest" "1MiB blob" "blob"
printf '%-16s %8s %8s %8s %8s %8s %8s %12s %9s %12s %9s\n' "" "push ms" "pull ms" "put ms" "get ms" "push ms" "pull ms" "GET req/s" "p99 ms" "GET req/s" "p99 ms"
for k in $b $d; do
  printf '%-16s %8s %8s %8s %8s %8s %8s %12s %9s %12s %9s\n' "$k" "${push[$k]}" "${pull[$k]}" "${rawput[$k]}" "${rawget[$k]}" "${bpush[$k]}" "${bpull[$k]}" "${mrps[$k]}" "${mp99[$k]}" "${brps[$k]}" "${bp99[$k]}"
done
python3 - "${push[$b]}" "${push[$d]}" "${pull[$b]}" "${pull[$d]}" "${rawput[$b]}" "${rawput[$d]}" "${rawget[$b]}" "${rawget[$d]}" "${bpush[$b]}" "${bpush[$d]}" "${bpull[$b]}" "${bpull[$d]}" "${mrps[$b]}" "${mrps[$d]}" "${mp99[$b]}" "${mp99[$d]}" "${brps[$b]}" "${brps[$d]}" "${bp99[$b]}" "${bp99[$d]}" <<'PY'
import sys
a = list(map(float, sys.argv[1:]))
r = lambda i: a[i] / a[i + 1]
print(f"berth / docker-registry (time ratios; lower is better): skopeo push {r(0):.2f}, skopeo pull {r(2):.2f}, "
      f"raw put {r(4):.2f}, raw get {r(6):.2f}, berth-client push {r(8):.2f}, berth-client pull {r(10):.2f}")
print(f"berth / docker-registry (req/s; higher is better): manifest GET {r(12):.1f}x (p99 {a[14]:.2f} vs {a[15]:.2f} ms), "
      f"1 MiB blob GET {r(16):.1f}x (p99 {a[18]:.2f} vs {a[19]:.2f} ms)")
PY
