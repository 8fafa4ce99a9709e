#!/usr/bin/env bash
# Builds the microVM guest kernel (vmlinux and bzImage) from Debian's linux-source-6.1 with
# scripts/guest-kernel.config (a copy of ../shared/vmm/microvm-guest.config), about 3 minutes
# on 2 cores. Cached in target/guest-kernel/<hash of config and script>/; prints that
# directory. Needs the packages of scripts/install-deps.sh (linux-source-6.1, bc, flex, bison,
# libelf-dev, libssl-dev).
set -euo pipefail
cd "$(dirname "$0")/.."
config=$PWD/scripts/guest-kernel.config
hash=$(cat "$config" scripts/build-guest-kernel.sh | sha256sum | cut -c1-16)
out=$PWD/target/guest-kernel/$hash
if [ -f "$out/vmlinux" ] && [ -f "$out/bzImage" ]; then echo "$out"; exit 0; fi
src=/usr/src/linux-source-6.1.tar.xz
[ -f "$src" ] || { echo "missing $src: run scripts/install-deps.sh" >&2; exit 1; }
build=$(mktemp -d /tmp/berth-guest-kernel.XXXXXX)
trap 'rm -rf "$build"' EXIT
tar -xf "$src" -C "$build"
cd "$build"/linux-source-6.1
make -s ARCH=x86_64 allnoconfig KCONFIG_ALLCONFIG="$config" >&2
make -s -j"$(nproc)" ARCH=x86_64 bzImage >&2
mkdir -p "$out.tmp"
cp vmlinux arch/x86/boot/bzImage "$out.tmp/"
rm -rf "$out"
mv "$out.tmp" "$out"
echo "$out"
