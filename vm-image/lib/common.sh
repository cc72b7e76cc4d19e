# shellcheck shell=bash
# Helpers shared by the vm-image build: messages, the guard on every path the
# build writes to, logged commands, content hashes and build stamps.
# Sourced by build.sh, which sets VM_DIR (the absolute vm-image directory).

# shellcheck disable=SC2034 # the other lib/*.sh files use these
CACHE_DIR=$VM_DIR/.cache
STAMP_DIR=$CACHE_DIR/stamps
LOG_DIR=$CACHE_DIR/logs
TMP_DIR=$CACHE_DIR/tmp

# Exit status meaning "already reported", so the ERR trap stays quiet.
readonly REPORTED=3

# Progress goes to stderr: `deno task start` runs this first, and its
# stdout is the guest command's.
info() { printf 'image: %s\n' "$*" >&2; }

die() {
	printf 'image: error: %s\n' "$*" >&2
	exit "$REPORTED"
}

# ERR trap (set in build.sh): name the command that failed unexpectedly.
on_error() {
	local rc=$1 where=$2 cmd=$3
	[ "$rc" -eq "$REPORTED" ] && exit "$REPORTED"
	printf 'image: error: unexpected failure (exit %s) at %s: %s\n' \
		"$rc" "$where" "$cmd" >&2
	printf 'image: the build is safe to re-run; outputs are only replaced' >&2
	printf ' once complete\n' >&2
	exit "$REPORTED"
}

# Every directory the build creates, fills or deletes goes through this.
# A path that is empty, "/", relative or outside vm-image/ is refused: a
# build that once wrote "$staging/etc/group" with an empty variable replaced
# its host's /etc/group.
assert_inside() {
	local path=$1
	case $path in
	"$VM_DIR"/?*) ;;
	*) die "refusing to write to '$path': it is not inside $VM_DIR" ;;
	esac
	case $path/ in
	*/../* | */./* | *//*)
		die "refusing to write to '$path': not a normalised path" ;;
	esac
}

# Empty DIR (creating it if needed), after the guard.
fresh_dir() {
	assert_inside "$1"
	rm -rf -- "$1"
	mkdir -p -- "$1"
}

# run_logged WHAT CMD...: run CMD with its output in a log file; on failure
# show the end of that log, then HINT if set (what to do about it), and stop.
run_logged() {
	local what=$1
	shift
	local log=$LOG_DIR/last_step.log
	if ! "$@" > "$log" 2>&1; then
		printf 'image: error: %s failed: %s\n' "$what" "$*" >&2
		tail -n 25 "$log" | sed 's/^/image:   | /' >&2
		printf 'image: full output: %s\n' "$log" >&2
		[ -z "${HINT:-}" ] || printf 'image: %s\n' "$HINT" >&2
		exit "$REPORTED"
	fi
}

# Print a hash of the build scripts themselves.
scripts_hash() {
	(cd "$VM_DIR" && sha256sum -- build.sh lib/*.sh) | sha256sum | cut -c1-64
}

# Print a hash of a directory tree: names, types, the executable bit, link
# targets and contents. Other mode bits are left out on purpose: they vary
# with the umask of whoever checked the repository out, and the build sets
# them itself.
tree_hash() {
	(
		cd -- "$1" || exit
		find . \( -type f -perm -u+x -printf 'x %p\n' \) -o \
			-printf '%y %p %l\n' | LC_ALL=C sort
		find . -type f -print0 | LC_ALL=C sort -z |
			xargs -0 -r sha256sum
	) | sha256sum | cut -c1-64
}

# Print a hash of the arguments.
text_hash() {
	printf '%s\n' "$@" | sha256sum | cut -c1-64
}

# is_fresh OUTPUT KEY: the output exists and was built from inputs with this
# key. FORCE=1 makes everything stale.
is_fresh() {
	local out=$1 key=$2 stamp
	[ "${FORCE:-0}" = 1 ] && return 1
	stamp=$STAMP_DIR/$(stamp_name "$out")
	[ -s "$out" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ]
}

# publish TMPFILE OUTPUT KEY: move a finished build product into place and
# record its key. The rename is atomic, so an interrupted build never leaves
# a half-written output behind a valid stamp, and a VM still running from the
# old file keeps it.
publish() {
	local tmp=$1 out=$2 key=$3
	assert_inside "$out"
	[ ! -d "$out" ] || die "$out is a directory; cannot replace it"
	mkdir -p -- "$(dirname "$out")"
	mv -f -- "$tmp" "$out"
	printf '%s\n' "$key" > "$STAMP_DIR/$(stamp_name "$out")"
}

stamp_name() {
	local rel=${1#"$VM_DIR"/}
	printf '%s' "${rel//\//__}"
}

# Size of a file for messages, e.g. "2.1 MB".
human_size() {
	local bytes
	bytes=$(stat -c %s "$1")
	awk -v b="$bytes" 'BEGIN { printf "%.1f MB", b / 1000000 }'
}
