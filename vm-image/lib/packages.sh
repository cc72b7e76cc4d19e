# shellcheck shell=bash
# Debian packages: which versions to use, downloading them into
# .cache/debs/ and unpacking them into .cache/pkgs/. Nothing is installed on
# the host: apt-get only downloads, dpkg-deb only extracts.

DEB_DIR=$CACHE_DIR/debs
PKG_DIR=$CACHE_DIR/pkgs

# Filled by resolve_packages: package name -> version. KERNEL_PKG is the
# linux-image-*-amd64 package that linux-image-amd64 currently depends on.
declare -A PKG_VERSION=()
KERNEL_PKG=

# Print a signature of apt's state: the package lists and the sources and
# preferences that decide the candidate versions. It changes after
# `apt-get update` or a change of apt configuration.
apt_signature() {
	local lists sources parts prefs prefparts
	eval "$(apt-config shell lists Dir::State::lists/d \
		sources Dir::Etc::sourcelist/f parts Dir::Etc::sourceparts/d \
		prefs Dir::Etc::preferences/f prefparts Dir::Etc::preferencesparts/d)"
	{
		stat -c '%n %s %Y' -- "$lists"*_Packages* "$sources" \
			"$parts"* "$prefs" "$prefparts"* 2> /dev/null || true
		dpkg --print-architecture
	} | sha256sum | cut -c1-64
}

# Print "package version" for the candidate of each package named.
apt_candidates() {
	apt-cache show --no-all-versions -- "$@" |
		awk '/^Package: / { p = $2 } /^Version: / { print p, $2 }'
}

# resolve_packages PKG...: choose the kernel package and the versions of
# busybox-static and the packages given. apt-cache reads all of apt's lists
# on every call (about 0.5 s here, where apt keeps no binary cache), so the
# answer is cached and reused while apt's state and the request are the same.
resolve_packages() {
	local cache=$CACHE_DIR/packages.env key line
	key=$(text_hash "$(apt_signature)" "$SCRIPTS_HASH" "$*")
	if [ -f "$cache" ] && [ "$(head -n 1 "$cache")" = "# $key" ]; then
		# shellcheck source=/dev/null
		. "$cache"
		return 0
	fi

	local lists
	eval "$(apt-config shell lists Dir::State::lists/d)"
	compgen -G "$lists*_Packages*" > /dev/null ||
		die "apt has no package lists; run: apt-get update"

	KERNEL_PKG=$(apt-cache show --no-all-versions linux-image-amd64 \
		2> /dev/null | sed -n 's/^Depends: //p' | tr ',' '\n' |
		sed -n 's/^ *\(linux-image-[^ ]*-amd64\)\( .*\)*$/\1/p' |
		head -n 1) || true
	[ -n "$KERNEL_PKG" ] ||
		die "cannot find linux-image-amd64's kernel package in apt's" \
			"lists; run: apt-get update"

	PKG_VERSION=()
	local wanted=("$KERNEL_PKG" busybox-static "$@") out
	out=$(apt_candidates "${wanted[@]}" 2>&1) ||
		die "apt-cache cannot find ${wanted[*]}: $out;" \
			"run: apt-get update"
	while read -r line; do
		PKG_VERSION[${line%% *}]=${line#* }
	done <<< "$out"
	local p
	for p in "${wanted[@]}"; do
		[ -n "${PKG_VERSION[$p]:-}" ] ||
			die "apt-cache gave no version for $p; run: apt-get update"
	done

	{
		echo "# $key"
		printf 'KERNEL_PKG=%q\n' "$KERNEL_PKG"
		for p in "${!PKG_VERSION[@]}"; do
			printf 'PKG_VERSION[%q]=%q\n' "$p" "${PKG_VERSION[$p]}"
		done
	} > "$cache.tmp"
	mv -f -- "$cache.tmp" "$cache"
}

# Print where the .deb of PKG (at its resolved version) is kept.
deb_path() {
	local pkg=$1 ver=${PKG_VERSION[$1]}
	printf '%s/%s_%s_amd64.deb' "$DEB_DIR" "$pkg" "${ver//:/%3a}"
}

# Download PKG's .deb unless it is cached. It lands in a scratch directory
# first, so a failed download never leaves a partial file in the cache.
fetch_deb() {
	local pkg=$1 deb tmp
	deb=$(deb_path "$pkg")
	[ -s "$deb" ] && return 0
	info "downloading $pkg ${PKG_VERSION[$pkg]}"
	tmp=$TMP_DIR/download
	fresh_dir "$tmp"
	mkdir -p -- "$DEB_DIR"
	# The sandbox option only silences apt's notice that it cannot drop
	# to the _apt user for a directory _apt cannot write.
	(
		cd -- "$tmp" || exit
		HINT="check that apt's mirror is reachable and its lists are"
		HINT+=" current (apt-get update), then re-run"
		run_logged "downloading $pkg" \
			apt-get download -q -o APT::Sandbox::User=root \
			"$pkg=${PKG_VERSION[$pkg]}"
	)
	mv -f -- "$tmp"/*.deb "$deb"
	rm -rf -- "$tmp"
}

# Print where PKG is unpacked (see unpack_deb).
pkg_root() {
	local ver=${PKG_VERSION[$1]:?"package $1 was not resolved"}
	printf '%s/%s_%s' "$PKG_DIR" "$1" "${ver//:/%3a}"
}

# Download and unpack PKG into .cache/pkgs/, once per version.
unpack_deb() {
	local pkg=$1 dest tmp
	dest=$(pkg_root "$pkg")
	[ -d "$dest" ] && return 0
	fetch_deb "$pkg"
	tmp=$dest.partial
	fresh_dir "$tmp"
	run_logged "unpacking $pkg" dpkg-deb -x "$(deb_path "$pkg")" "$tmp"
	mv -- "$tmp" "$dest"
}

# Remove cached .debs and unpacked trees other than the versions chosen this
# time, so that each kernel update does not leave another 70 MB behind.
prune_packages() {
	local pkg f
	local -A keep=()
	for pkg in "${!PKG_VERSION[@]}"; do
		keep[$(deb_path "$pkg")]=1
		keep[$(pkg_root "$pkg")]=1
	done
	for f in "$DEB_DIR"/*.deb "$PKG_DIR"/*; do
		if [ -z "${keep[$f]:-}" ]; then
			assert_inside "$f"
			rm -rf -- "$f"
		fi
	done
}
