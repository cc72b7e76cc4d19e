#!/bin/bash
# Build the vmrunner guest image from Debian's packages (`deno task image`):
#   vm-image/vmlinuz                      Debian's kernel, as shipped
#   vm-image/initrd                       busybox + disk drivers, /init
#   vm-image/rootfs.vhdx                  the default variant (root shell)
#   vm-image/variants/<name>/rootfs.vhdx  the other variants
# Each output is rebuilt only when its inputs change: these scripts, the
# files it is made from, or the Debian package versions apt now chooses.
# Downloads and intermediate files live in vm-image/.cache/.
#
# Usage: build.sh [--force]    (--force rebuilds everything)
#
# Needs root (device nodes and file owners in the images) and these host
# tools, which it checks for but never installs: apt, dpkg, e2fsprogs,
# qemu-utils, cpio, gzip. See README.md.

# The script needs bash; `sh build.sh` re-runs it under bash.
if [ -z "${BASH_VERSION:-}" ]; then
	exec bash "$0" "$@"
fi

set -Eeuo pipefail
shopt -s nullglob
umask 022
export LC_ALL=C
PATH=/usr/sbin:/usr/bin:/sbin:/bin

VM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
# The guard in lib/common.sh trusts VM_DIR: make sure it is this directory.
if [ "$VM_DIR" = / ] || [ ! -f "$VM_DIR/build.sh" ] ||
	[ ! -d "$VM_DIR/rootfs/common" ]; then
	echo "image: error: cannot locate vm-image/ (got '$VM_DIR')" >&2
	exit 1
fi

. "$VM_DIR/lib/common.sh"
. "$VM_DIR/lib/packages.sh"
. "$VM_DIR/lib/kernel.sh"
. "$VM_DIR/lib/rootfs.sh"

trap 'on_error $? "${BASH_SOURCE[0]##*/}:$LINENO" "$BASH_COMMAND"' ERR

usage() {
	sed -n '2,/^$/s/^# \{0,1\}//p' "$VM_DIR/build.sh"
}

# Say which Debian package provides each missing tool.
check_host() {
	local tool pkg missing=()
	for tool in apt-get:apt apt-cache:apt apt-config:apt dpkg:dpkg \
		dpkg-deb:dpkg mkfs.ext4:e2fsprogs e2fsck:e2fsprogs \
		qemu-img:qemu-utils cpio:cpio gzip:gzip tar:tar flock:util-linux \
		find:findutils xargs:findutils sha256sum:coreutils awk:mawk \
		sed:sed; do
		pkg=${tool#*:}
		tool=${tool%%:*}
		command -v "$tool" > /dev/null || missing+=("$pkg")
	done
	if [ "${#missing[@]}" -gt 0 ]; then
		die "missing tools; install them with:" \
			"apt-get install $(printf '%s\n' "${missing[@]}" |
				sort -u | tr '\n' ' ')"
	fi
	[ "$(id -u)" = 0 ] ||
		die "run as root: the images contain device nodes and" \
			"root-owned files"
	[ "$(dpkg --print-architecture)" = amd64 ] ||
		die "the host must be a Debian amd64 system (apt downloads" \
			"amd64 packages)"
}

# One build at a time: concurrent builds would share the staging areas.
take_lock() {
	mkdir -p -- "$CACHE_DIR" "$STAMP_DIR" "$LOG_DIR" "$TMP_DIR"
	exec 9> "$CACHE_DIR/lock"
	if ! flock -n 9; then
		info "waiting for another build of the image to finish"
		flock 9
	fi
}

main() {
	FORCE=0
	case ${1:-} in
	'') ;;
	--force) FORCE=1 ;;
	-h | --help)
		usage
		return 0
		;;
	*) die "unknown argument '$1' (try --help)" ;;
	esac

	check_host
	take_lock

	# Any change to the build scripts rebuilds everything.
	SCRIPTS_HASH=$(scripts_hash)

	# Reading every variant.conf first also stops a broken one early.
	local extra name built
	extra=$(variant_packages)
	# shellcheck disable=SC2086 # one package name per line
	resolve_packages $extra

	build_vmlinuz
	build_initrd
	for name in $(variant_names); do
		(build_variant "$name")
	done
	[ "$(variant_output "$DEFAULT_VARIANT")" -ef \
		"$VM_DIR/variants/$DEFAULT_VARIANT/rootfs.vhdx" ] ||
		link_default_variant
	prune_variants
	prune_packages
	rm -rf -- "$CACHE_DIR/stage"

	# take_lock touched the lock file: newer stamps were written just now.
	built=$(find "$STAMP_DIR" -type f -newer "$CACHE_DIR/lock" | wc -l)
	if [ "$built" -eq 0 ]; then
		info "up to date (vmlinuz, initrd, rootfs.vhdx and" \
			"$(($(variant_names | wc -l) - 1)) variants in vm-image/)"
	fi
}

main "$@"
