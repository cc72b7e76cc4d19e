# shellcheck shell=bash
# The root filesystems: one ext4 image per variant, made with `mkfs.ext4 -d`
# from a staging directory (no loop mounts) and converted to a dynamic VHDX.
#
# A variant is a directory rootfs/variants/<name>/ with a variant.conf (see
# rootfs/variants/root/variant.conf for its keys) and optionally files/,
# copied over rootfs/common/. The default variant is vm-image/rootfs.vhdx;
# the others are vm-image/variants/<name>/rootfs.vhdx.

ROOTFS_SRC=$VM_DIR/rootfs
DEFAULT_VARIANT=root

# Print the variant names, the default first.
variant_names() {
	local dir name
	echo "$DEFAULT_VARIANT"
	for dir in "$ROOTFS_SRC"/variants/*/; do
		name=$(basename "$dir")
		[ "$name" = "$DEFAULT_VARIANT" ] || echo "$name"
	done
}

variant_output() {
	if [ "$1" = "$DEFAULT_VARIANT" ]; then
		printf '%s/rootfs.vhdx' "$VM_DIR"
	else
		printf '%s/variants/%s/rootfs.vhdx' "$VM_DIR" "$1"
	fi
}

# load_variant NAME: set console, packages and size_mb (and maybe
# customize()) from the variant's variant.conf. Call it in a subshell.
load_variant() {
	local conf=$ROOTFS_SRC/variants/$1/variant.conf
	[ -f "$conf" ] || die "variant $1 has no variant.conf ($conf)"
	console='' packages='' size_mb=64
	unset -f customize
	# shellcheck source=/dev/null
	. "$conf"
	[ -n "$console" ] || die "$conf sets no console= entry"
	case $size_mb in
	'' | *[!0-9]*) die "$conf: size_mb must be a number of MiB" ;;
	esac
}

# Print the extra packages every variant needs, one per line.
variant_packages() {
	local name
	for name in $(variant_names); do
		(
			load_variant "$name"
			# shellcheck disable=SC2086 # a space-separated list
			[ -z "$packages" ] || printf '%s\n' $packages
		)
	done | LC_ALL=C sort -u
}

# install_busybox ROOT: busybox and a relative symlink per applet. Relative
# links matter during the build: an absolute /bin/busybox link in the staging
# directory points at the host's file, and anything written through it would
# land there.
install_busybox() {
	local root=$1 app up
	install -m 0755 "$(host_busybox)" "$root/bin/busybox"
	while read -r app; do
		case $app in
		*/*) ;;
		*) continue ;; # linuxrc: an initrd (not initramfs) thing
		esac
		[ "$app" = bin/busybox ] && continue
		up=${app//[!\/]/}
		up=${up//\//../}
		ln -sfn "${up}bin/busybox" "$root/$app"
	done < <("$(host_busybox)" --list-full)
}

# Fill the staging directory of a variant. Runs in a subshell whose working
# directory is the staging directory, so every path here is relative.
populate_rootfs() {
	local name=$1
	mkdir -p bin dev etc home/test mnt proc root run sbin sys tmp usr/bin \
		usr/sbin var/log var/tmp
	install_busybox .
	ln -s ../run var/run
	ln -s ../proc/self/mounts etc/mtab
	# devtmpfs replaces /dev at boot; these are for a boot without it.
	mknod -m 600 dev/console c 5 1
	mknod -m 666 dev/null c 1 3

	# --remove-destination: a file that replaces an applet link (such as
	# sbin/reboot) must replace the link, not be written through it.
	cp -R --remove-destination "$ROOTFS_SRC/common/." .
	if [ -d "$ROOTFS_SRC/variants/$name/files" ]; then
		cp -R --remove-destination "$ROOTFS_SRC/variants/$name/files/." .
	fi
	printf '%s\n' "$console" >> etc/inittab

	chown -R 0:0 .
	chown -R 1000:1000 home/test
	chmod 0600 etc/shadow
	chmod 0700 root home/test
	chmod 1777 tmp var/tmp
	if declare -F customize > /dev/null; then
		customize
	fi
}

build_variant() {
	local name=$1 out key stage img tmp pkg pkg_versions=()
	out=$(variant_output "$name")
	load_variant "$name"
	for pkg in $packages; do
		pkg_versions+=("$pkg=${PKG_VERSION[$pkg]}")
	done
	key=$(text_hash rootfs "$SCRIPTS_HASH" \
		"$(tree_hash "$ROOTFS_SRC/common")" \
		"$(tree_hash "$ROOTFS_SRC/variants/$name")" \
		"${PKG_VERSION[busybox-static]}" "${pkg_versions[@]}")
	is_fresh "$out" "$key" && return 0

	unpack_deb busybox-static
	for pkg in $packages; do
		unpack_deb "$pkg"
	done
	stage=$CACHE_DIR/stage/rootfs_$name
	fresh_dir "$stage"
	(cd "$stage" && populate_rootfs "$name")

	# -b 4096: mke2fs's "small" profile would pick 1 KiB blocks and four
	# block groups whose superblock backups each cost a VHDX block.
	# lazy_itable_init=0: zero the inode tables now (zeros cost nothing in
	# the VHDX) rather than have the kernel's ext4lazyinit write them, and
	# grow the image, on the first read-write boot.
	img=$TMP_DIR/rootfs_$name.ext4
	rm -f -- "$img"
	run_logged "mkfs.ext4 for $name" mkfs.ext4 -q -F -b 4096 -I 256 \
		-i 8192 -L rootfs -E root_owner=0:0,lazy_itable_init=0 \
		-d "$stage" "$img" "${size_mb}M"
	run_logged "e2fsck of $name's image" e2fsck -fn "$img"
	# block_size=1M instead of 8 MiB keeps the file about 4x smaller.
	tmp=$TMP_DIR/rootfs_$name.vhdx
	run_logged "qemu-img convert for $name" qemu-img convert -f raw \
		-O vhdx -o subformat=dynamic,block_size=1M "$img" "$tmp"
	rm -f -- "$img"
	publish "$tmp" "$out" "$key"
	if [ "$name" = "$DEFAULT_VARIANT" ]; then
		link_default_variant
	fi
	info "built ${out#"$VM_DIR"/} ($name, $(human_size "$out"))"
}

# variants/root/rootfs.vhdx is a hard link to rootfs.vhdx, so that tests can
# name every variant the same way. It is the same file, not a copy.
link_default_variant() {
	local link
	link=$VM_DIR/variants/$DEFAULT_VARIANT/rootfs.vhdx
	assert_inside "$link"
	mkdir -p -- "$(dirname "$link")"
	ln -f -- "$(variant_output "$DEFAULT_VARIANT")" "$link"
}

# Remove the outputs of variants that no longer exist.
prune_variants() {
	local dir name
	for dir in "$VM_DIR"/variants/*/; do
		[ -d "$dir" ] || continue
		name=$(basename "$dir")
		[ -d "$ROOTFS_SRC/variants/$name" ] && continue
		assert_inside "${dir%/}"
		rm -rf -- "${dir%/}"
		rm -f -- "$STAMP_DIR/variants__${name}__rootfs.vhdx"
		info "removed variants/$name (no such variant any more)"
	done
}
