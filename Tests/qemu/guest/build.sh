#!/bin/sh
# Build the test guest: Tests/qemu/guest/build.sh [OUTDIR]  (default: <repo>/.cache/guest)
# Needs only binutils (as --32, ld -m elf_i386). Prints the path of guest.elf.
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/../../../.cache/guest}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
as --32 -o "$out/guest.o" "$here/guest.S"
ld -m elf_i386 -nostdlib -e _start -Ttext=0x100000 -n --no-warn-rwx-segments \
   -o "$out/guest.elf.tmp" "$out/guest.o"
mv "$out/guest.elf.tmp" "$out/guest.elf"
echo "$out/guest.elf"
