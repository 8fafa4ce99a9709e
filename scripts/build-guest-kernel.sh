#!/usr/bin/env bash
# Builds the microVM guest kernel (vmlinux and bzImage) from Debian's linux-source-6.1 with
# scripts/guest-kernel.config (a copy of ../shared/vmm/microvm-guest.config), about 3 minutes
# on 2 cores, and in the same tree a second bzImage, bzImage-lz4, compressed with LZ4
# instead of gzip (only the decompressor stub is rebuilt): gzip's decompressor runs for
# minutes under kvm_pvm's instruction emulator. Cached in
# target/guest-kernel/<hash of config and script>/; prints that directory. Needs the
# packages of scripts/install-deps.sh (linux-source-6.1, bc, flex, bison, libelf-dev,
# libssl-dev, lz4).
set -euo pipefail
cd "$(dirname "$0")/.."
config=$PWD/scripts/guest-kernel.config
hash=$(cat "$config" scripts/build-guest-kernel.sh | sha256sum | cut -c1-16)
out=$PWD/target/guest-kernel/$hash
if [ -f "$out/vmlinux" ] && [ -f "$out/bzImage" ] && [ -f "$out/bzImage-lz4" ]; then echo "$out"; exit 0; fi
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
scripts/config --disable KERNEL_GZIP --enable KERNEL_LZ4
make -s ARCH=x86_64 olddefconfig >&2
make -s -j"$(nproc)" ARCH=x86_64 bzImage >&2
cp arch/x86/boot/bzImage "$out.tmp/bzImage-lz4"
rm -rf "$out"
mv "$out.tmp" "$out"
echo "$out"
