#!/usr/bin/env bash
# Installs what berth's build, tests and benchmarks need on Debian 12 (run as root).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
pkgs=(busybox-static libseccomp-dev pkg-config podman crun runc hyperfine uidmap iproute2 procps time nasm binutils qemu-system-x86 python3 linux-source-6.1 bc flex bison libelf-dev libssl-dev cpio make gcc xz-utils)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
fi
