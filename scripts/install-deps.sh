#!/usr/bin/env bash
# Installs what berth's build, tests and benchmarks need on Debian 12 (run as root).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
# skopeo, docker-registry (distribution 2.8, a peer in the registry tests), wrk (bench),
# apache2-utils (htpasswd), openssl (TLS test certificates), curl, gzip, umoci, buildah: the
# image and registry suites. nasm, binutils, qemu-system-x86 and the kernel-build tools: the
# microVM suites (test guest, qemu baseline, guest kernel from linux-source-6.1; lz4 for
# its LZ4 bzImage; e2fsprogs: `berth vm image` and its checks; file: the agent test).
# libc6-dev (libc.a) and libseccomp-dev (libseccomp.a): the static berth-runtime and berth-vmm.
# containerd (ctr, the runc v2 shim): tests/containerd.rs drives berth-runtime through it; criu:
# checkpoint/restore probes; catatonit: `podman run --init` in tests/podman.rs; protobuf-compiler
# (protoc, for the k8s-cri crate) and containernetworking-plugins: the CRI test, tests/cri.rs.
# sqlite3: tests/kube.rs reads the engine's rows after `kube down`.
# iperf3: bench/network.sh's throughput through a published port (copied into its image).
# docker-compose (1.29, Python): tests/dockerapi_compose.rs and bench/dockerapi.sh, a client of
# berth's Docker API socket.
pkgs=(busybox-static libseccomp-dev pkg-config podman buildah crun runc hyperfine uidmap iproute2 nftables procps time
      skopeo umoci tar gzip docker-registry wrk apache2-utils openssl curl
      nasm binutils e2fsprogs qemu-system-x86 python3 python3-docker linux-source-6.1 bc flex bison libelf-dev libssl-dev lz4 cpio make gcc libc6-dev file xz-utils
      containerd criu catatonit protobuf-compiler containernetworking-plugins
      docker-compose iperf3 sqlite3)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" </dev/null
fi
# docker.io: the docker CLI of tests/dockerapi.rs, a client of berth's Docker API socket only.
# Its daemon is kept from starting while it installs (policy-rc.d answers 101, "action
# forbidden", to invoke-rc.d and deb-systemd-invoke); the tests never start it.
if ! dpkg -s docker.io >/dev/null 2>&1; then
  had_policy=0
  if [ -e /usr/sbin/policy-rc.d ]; then had_policy=1; cp -p /usr/sbin/policy-rc.d /usr/sbin/policy-rc.d.berth-save; fi
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  apt-get update -qq
  rc=0
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends docker.io </dev/null || rc=$?
  if [ "$had_policy" = 1 ]; then mv /usr/sbin/policy-rc.d.berth-save /usr/sbin/policy-rc.d; else rm -f /usr/sbin/policy-rc.d; fi
  [ "$rc" = 0 ] || exit "$rc"
fi
