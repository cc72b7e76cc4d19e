# shellcheck shell=bash
# The kernel (vm-image/vmlinuz) and the initramfs (vm-image/initrd).
#
# The kernel package is unpacked once per version into a scratch directory,
# never into the host's /boot or /lib/modules. What later steps need from it
# is kept in .cache/kernel/<package>_<version>/:
#   vmlinuz      the bzImage as Debian ships it (signed, xz-compressed)
#   modules.dep  the dependencies of every module, from busybox depmod
#   kernel.env   the release name and where the modules sit in the package
# The 390 MB module tree is then deleted; the few modules the initrd needs are
# extracted again from the .deb when the initrd is rebuilt.

INITRD_SRC=$VM_DIR/initramfs

kernel_dir() {
	printf '%s/kernel/%s_%s' "$CACHE_DIR" "$KERNEL_PKG" \
		"${PKG_VERSION[$KERNEL_PKG]//:/%3a}"
}

# busybox from busybox-static, run on the host for depmod.
host_busybox() {
	printf '%s/bin/busybox' "$(pkg_root busybox-static)"
}

prepare_kernel() {
	local kdir tmp moddir release
	kdir=$(kernel_dir)
	if [ -s "$kdir/kernel.env" ]; then
		# shellcheck source=/dev/null
		. "$kdir/kernel.env"
		return 0
	fi
	fetch_deb "$KERNEL_PKG"
	unpack_deb busybox-static
	info "unpacking $KERNEL_PKG ${PKG_VERSION[$KERNEL_PKG]}"
	tmp=$TMP_DIR/kernel
	fresh_dir "$tmp"
	run_logged "unpacking $KERNEL_PKG" \
		dpkg-deb -x "$(deb_path "$KERNEL_PKG")" "$tmp"

	# Debian 12 ships the modules in /lib/modules, later releases in
	# /usr/lib/modules.
	moddir=$(cd "$tmp" && compgen -G 'lib/modules/*' ||
		compgen -G 'usr/lib/modules/*') ||
		die "$KERNEL_PKG contains no lib/modules/<release>"
	release=${moddir##*/}
	[ -f "$tmp/boot/vmlinuz-$release" ] ||
		die "$KERNEL_PKG contains no boot/vmlinuz-$release"
	run_logged "depmod for $release" \
		"$(host_busybox)" depmod -b "$tmp/${moddir%lib/modules/*}" \
		"$release"

	fresh_dir "$kdir.partial"
	cp -- "$tmp/boot/vmlinuz-$release" "$kdir.partial/vmlinuz"
	cp -- "$tmp/$moddir/modules.dep" "$kdir.partial/modules.dep"
	printf 'KERNEL_RELEASE=%q\nKERNEL_MODDIR=%q\n' "$release" "$moddir" \
		> "$kdir.partial/kernel.env"
	rm -rf -- "$kdir" "$tmp"
	mv -- "$kdir.partial" "$kdir"
	# shellcheck source=/dev/null
	. "$kdir/kernel.env"
	prune_kernels
}

# Keep only the current kernel's cache directory.
prune_kernels() {
	local keep f
	keep=$(kernel_dir)
	for f in "$CACHE_DIR"/kernel/*; do
		[ "$f" = "$keep" ] && continue
		assert_inside "$f"
		rm -rf -- "$f"
	done
}

build_vmlinuz() {
	local out=$VM_DIR/vmlinuz key tmp
	key=$(text_hash vmlinuz "$KERNEL_PKG" "${PKG_VERSION[$KERNEL_PKG]}")
	is_fresh "$out" "$key" && return 0
	prepare_kernel
	tmp=$TMP_DIR/vmlinuz
	cp -- "$(kernel_dir)/vmlinuz" "$tmp"
	publish "$tmp" "$out" "$key"
	info "built vmlinuz ($KERNEL_PKG ${PKG_VERSION[$KERNEL_PKG]})"
}

# Print the module names listed in modules.conf.
initrd_module_names() {
	sed -e 's/#.*//' -n -e 's/^[a-z_]*:\(.*\)/\1/p' \
		"$INITRD_SRC/modules.conf" | tr -s ' \t' '\n' | sed '/^$/d'
}

# Print the paths (relative to the module directory) of the modules named on
# stdin and of everything they depend on, using the full modules.dep.
module_closure() {
	awk -v depfile="$(kernel_dir)/modules.dep" -v pkg="$KERNEL_PKG" '
	BEGIN {
		while ((getline line < depfile) > 0) {
			n = split(line, f, /:? +|:$/)
			path = f[1]
			name = path
			sub(/.*\//, "", name)
			sub(/\.ko.*$/, "", name)
			gsub(/-/, "_", name)
			by_name[name] = path
			deps[path] = ""
			for (i = 2; i <= n; i++)
				if (f[i] != "")
					deps[path] = deps[path] " " f[i]
		}
	}
	function add(path,   d, k, i) {
		if (path in seen)
			return
		seen[path] = 1
		print path
		k = split(deps[path], d, " ")
		for (i = 1; i <= k; i++)
			add(d[i])
	}
	{
		if (!($1 in by_name)) {
			print "image: error: no module " $1 " in " pkg \
				> "/dev/stderr"
			missing = 1
			next
		}
		add(by_name[$1])
	}
	END { exit missing }'
}

build_initrd() {
	local out=$VM_DIR/initrd key stage mods tmp
	key=$(text_hash initrd "$(tree_hash "$INITRD_SRC")" "$SCRIPTS_HASH" \
		"$KERNEL_PKG" "${PKG_VERSION[$KERNEL_PKG]}" \
		"${PKG_VERSION[busybox-static]}")
	is_fresh "$out" "$key" && return 0
	prepare_kernel
	fetch_deb "$KERNEL_PKG"
	unpack_deb busybox-static

	stage=$CACHE_DIR/stage/initrd
	fresh_dir "$stage"
	(
		cd -- "$stage" || exit
		mkdir -p bin dev etc lib/modules newroot proc run sbin sys tmp \
			usr/bin usr/sbin
		install_busybox .
		mknod -m 600 dev/console c 5 1
		mknod -m 666 dev/null c 1 3
		install -m 0755 "$INITRD_SRC/init" init
		install -m 0644 "$INITRD_SRC/modules.conf" \
			etc/initrd_modules.conf
	)

	mods=$(initrd_module_names | module_closure) ||
		die "fix initramfs/modules.conf (module names use underscores)"
	extract_modules "$stage" <<< "$mods"
	run_logged "depmod for the initrd" \
		"$(host_busybox)" depmod -b "$stage" "$KERNEL_RELEASE"

	tmp=$TMP_DIR/initrd
	(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort |
		cpio -o -H newc -R 0:0 --quiet) | gzip -9n > "$tmp"
	publish "$tmp" "$out" "$key"
	info "built initrd ($(wc -l <<< "$mods") modules, $(human_size "$out"))"
}

# extract_modules STAGE: copy the modules listed on stdin from the kernel
# .deb into STAGE/lib/modules/<release>/ (busybox modprobe looks there).
extract_modules() {
	local stage=$1 tmp list
	tmp=$TMP_DIR/modules
	fresh_dir "$tmp"
	list=$TMP_DIR/modules.list
	sed "s|^|./$KERNEL_MODDIR/|" > "$list"
	dpkg-deb --fsys-tarfile "$(deb_path "$KERNEL_PKG")" |
		tar -x -C "$tmp" -T "$list"
	mv -- "$tmp/$KERNEL_MODDIR" "$stage/lib/modules/$KERNEL_RELEASE"
	rm -rf -- "$tmp" "$list"
}
