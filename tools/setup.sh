#!/bin/sh
# Installs the Debian packages that building the test image and the
# simulator, and running the tests, need. Idempotent: it installs only what
# is missing, so a second run costs a few milliseconds.
#
# Usage: tools/setup.sh [--windows]   (--windows: also what the Windows
#        tests need: Wine's patchelf, and unzip to check the release zip)
set -eu

need=""
want() { # want COMMAND PACKAGE
  command -v "$1" >/dev/null 2>&1 || need="$need $2"
}
want qemu-system-x86_64 qemu-system-x86
want qemu-img qemu-utils
want mkfs.ext4 e2fsprogs
want cpio cpio
want gzip gzip
want tmux tmux
want make make
want gcc gcc
want x86_64-w64-mingw32-gcc gcc-mingw-w64-x86-64
[ -x /bin/busybox ] || need="$need busybox-static"
if [ "${1:-}" = "--windows" ]; then
  want patchelf patchelf
  want unzip unzip
fi

[ -n "$need" ] || exit 0
if [ "$(id -u)" != 0 ]; then
  echo "setup: missing Debian packages:$need" >&2
  echo "setup: install them with: sudo apt-get install$need" >&2
  exit 1
fi
echo "setup: installing$need" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086 # the list is meant to split into words
apt-get install -y -qq --no-install-recommends $need >/dev/null
