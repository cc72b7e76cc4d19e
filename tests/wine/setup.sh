#!/usr/bin/env bash
# Prepares the Windows build of Deno under Wine 10, so the Windows-only code
# of vmrunner (kernel32/ntdll FFI, named pipes, UTF-16) can be tested on a
# Debian x86_64 host. Prints one line on stdout: the path of CACHE_DIR/deno-win,
# a wrapper that takes deno's own arguments (`deno-win test --allow-ffi x.ts`).
# Beside it, on the same prefix: CACHE_DIR/wineserver runs that Wine's
# wineserver (run.ts uses it to stop Wine after a run), CACHE_DIR/wine runs
# any Windows program, and CACHE_DIR/ctrl-event.exe (from ctrl_event.c)
# sends Ctrl+C or Ctrl+Break to a Windows process.
#
# Usage: tests/wine/setup.sh [CACHE_DIR]     (default: <repo>/.cache/wine)
# Env:   DENO_VERSION  the Deno to fetch (default: that of `deno` on PATH)
#        WINE_SETUP_VERBOSE=1  show the output of every step
#
# Every step leaves a stamp when it succeeds, so a second run only checks
# stamps (about a second) and prints the wrapper path. Progress goes to
# stderr, one line per step that does work; a failing step prints its log.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${1:-$repo/.cache/wine}"
verbose="${WINE_SETUP_VERBOSE:-0}"

say() { echo "wine setup: $*" >&2; }
die() {
  say "error: $1"
  [[ $# -gt 1 ]] && say "to fix: $2"
  exit 1
}

mkdir -p "$cache" || die "cannot create the cache folder $cache" \
  "pass a writable CACHE_DIR"
cache="$(cd "$cache" && pwd)"
log="$cache/setup.log"

# One setup at a time per cache: two CI jobs sharing a cache would otherwise
# unpack over each other.
exec 9>"$cache/.lock"
flock -w 600 9 || die "another setup has held $cache/.lock for 10 minutes" \
  "wait for it, or remove the lock file if no setup is running"

# Runs a step with its output in setup.log (or on stderr when verbose), and
# on failure shows the end of that log with what failed.
step() {
  local what="$1"
  shift
  if [[ "$verbose" == 1 ]]; then
    "$@" >&2 && return 0
  else
    "$@" >"$log" 2>&1 && return 0
    say "$what failed; the end of its output:"
    tail -n 25 "$log" | sed 's/^/  | /' >&2
  fi
  return 1
}

deno_version="${DENO_VERSION:-}"
if [[ -z "$deno_version" ]]; then
  deno_version="$( (deno --version 2>/dev/null || true) | awk 'NR == 1 { print $2 }')"
fi
[[ "$deno_version" =~ ^[0-9]+\.[0-9]+\.[0-9]+ ]] ||
  die "cannot tell which Deno version to fetch (no deno on PATH)" \
    "install Deno, or set DENO_VERSION=2.9.6"
[[ "$(uname -m)" == x86_64 ]] ||
  die "the Windows Deno under Wine needs an x86_64 host, this is $(uname -m)"

wine_major() { "$1" --version 2>/dev/null | sed -nE 's/^wine-([0-9]+)\..*/\1/p'; }

apt_install() {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
}

# --- Wine 10 -----------------------------------------------------------------
# Debian 13 ships Wine 10. Debian 12 ships Wine 8, which cannot run V8, so
# Debian 13's Wine packages are unpacked into the cache, with patchelf pointing
# the two ELF entry points (loader and wineserver) at Debian 13's own glibc,
# which comes along in the same folder. The host's libraries are still found
# for everything else Wine loads; they are older and so compatible.

# The main archive of the host's own apt sources (not security or updates).
debian_mirror() {
  # shellcheck disable=SC2016 # apt's own $(FIELD) syntax, not the shell's
  apt-get indextargets --format '$(SITE) $(RELEASE)' 2>/dev/null |
    awk '$2 !~ /-(security|updates|backports)$/ { print $1; exit }'
}

in_dir() { (cd "$1" && shift && "$@"); }

private_wine() {
  local root="$cache/wine10"
  local stamp="$root/.complete"
  wine_loader="$root/usr/lib/wine/wine64"
  wine_server="$root/usr/lib/wine/wineserver"
  zlib_dll="$root/usr/x86_64-w64-mingw32/lib/zlib1.dll"
  [[ -f "$stamp" && -x "$wine_loader" ]] && return 0

  say "unpacking Wine 10 from Debian 13 into $root"
  rebuilt=1
  if ! command -v patchelf >/dev/null; then
    step "apt-get update" apt-get update -q ||
      die "apt-get update failed" "check the Debian mirror in /etc/apt"
    step "install patchelf" apt_install patchelf ||
      die "cannot install patchelf" "apt-get install patchelf, as root"
  fi

  # A private apt state for the trixie suite on the host's own mirror, so the
  # host's package lists and installed set stay untouched.
  local site
  site="$(debian_mirror)"
  if [[ -z "$site" ]]; then
    step "apt-get update" apt-get update -q || true
    site="$(debian_mirror)"
  fi
  [[ -n "$site" ]] || die "apt knows no Debian mirror to fetch Wine 10 from" \
    "add a Debian mirror to /etc/apt/sources.list.d and run apt-get update"

  local apt="$cache/apt"
  mkdir -p "$apt/lists/partial" "$apt/archives/partial" "$apt/parts" \
    "$cache/debs"
  echo "deb $site trixie main" >"$apt/sources.list"
  local opts=(
    -o "Dir::Etc::SourceList=$apt/sources.list"
    -o "Dir::Etc::SourceParts=$apt/parts"
    -o "Dir::State::Lists=$apt/lists"
    -o "Dir::Cache=$apt"
    -o "APT::Sandbox::User=root"
  )
  step "apt-get update (trixie)" apt-get "${opts[@]}" -q update ||
    die "cannot read Debian 13's package lists from $site" \
      "check that the mirror serves trixie (see $log)"
  # wine64 is the loader and server, libwine the DLLs, wine the scripts;
  # Wine 10 needs a newer glibc than Debian 12's and libunwind for ntdll.so;
  # zlib1.dll is the one DLL user32 needs that Wine does not carry itself.
  local pkgs=(wine wine64 libwine libc6 libunwind8 libz-mingw-w64)
  rm -f "$cache"/debs/*.deb
  step "download ${pkgs[*]}" \
    in_dir "$cache/debs" apt-get "${opts[@]}" -q download "${pkgs[@]}" ||
    die "cannot download Debian 13's ${pkgs[*]}" "see $log"

  rm -rf "$root"
  local deb
  for deb in "$cache"/debs/*.deb; do
    step "unpack $deb" dpkg-deb -x "$deb" "$root" ||
      die "cannot unpack $deb" "delete $cache/debs and run again"
  done
  local ld="$root/usr/lib64/ld-linux-x86-64.so.2"
  local bin
  for bin in wine64 wineserver64; do
    step "patchelf $bin" patchelf --set-interpreter "$ld" --force-rpath \
      --set-rpath "$root/usr/lib/x86_64-linux-gnu" "$root/usr/lib/wine/$bin" ||
      die "patchelf failed on $bin" "see $log"
  done
  # The loader starts the wineserver script beside itself, whose Debian
  # version names /usr/lib/wine/wineserver64; point it at the private one.
  # -p0, as Debian's script has: the server exits with its last client.
  printf '#!/bin/sh\nexec "%s" -p0 "$@"\n' "$root/usr/lib/wine/wineserver64" \
    >"$root/usr/lib/wine/wineserver"
  # Wine looks for its data (nls, wine.inf) at <bindir>/../../share/wine/wine
  # before Debian's absolute /usr/share/wine; give the relative path a target.
  ln -sfn . "$root/usr/share/wine/wine"
  [[ "$(wine_major "$wine_loader")" -ge 10 ]] 2>/dev/null ||
    die "the unpacked Wine does not run, or is older than 10" "see $log"
  rm -f "$cache"/debs/*.deb
  wine_major "$wine_loader" >"$stamp"
}

system_wine() {
  wine_loader=/usr/lib/wine/wine64
  wine_server=/usr/lib/wine/wineserver
  zlib_dll=""
  if [[ ! -x "$wine_loader" ]]; then
    say "installing Wine from Debian"
    rebuilt=1
    step "apt-get update" apt-get update -q || true
    step "install wine" apt_install wine wine64 ||
      die "cannot install Debian's wine packages" "apt-get install wine64"
  fi
  local major
  major="$(wine_major "$wine_loader")"
  [[ -n "$major" && "$major" -ge 10 ]] ||
    die "the system Wine is ${major:-missing}; the Windows Deno needs Wine 10" \
      "use Debian 13, or Debian 12 without wine64 installed"
}

rebuilt=0 # set by any step that does work, so the result is tried again
debian_major="$(cut -d. -f1 /etc/debian_version 2>/dev/null || true)"
if [[ "$debian_major" == 12 ]]; then
  private_wine
elif [[ "$debian_major" =~ ^[0-9]+$ && "$debian_major" -ge 13 ]] ||
  grep -qs '^trixie\|^forky\|/sid' /etc/debian_version; then
  system_wine
else
  die "this host is not Debian 12 or 13 ($(cat /etc/debian_version 2>/dev/null || uname -s))" \
    "run on Debian 12 or 13"
fi

# --- The Windows build of Deno -------------------------------------------------
# npm checks the tarball against the registry's integrity hash.
deno_dir="$cache/deno-$deno_version"
if [[ ! -f "$deno_dir/.complete" ]]; then
  say "fetching @deno/win32-x64@$deno_version from the npm registry"
  rebuilt=1
  command -v npm >/dev/null ||
    die "npm is missing" "install Node.js and npm (apt-get install npm)"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  step "npm pack" npm pack --loglevel=error --pack-destination "$tmp" \
    "@deno/win32-x64@$deno_version" ||
    die "npm could not fetch @deno/win32-x64@$deno_version" \
      "check that the version exists (npm view @deno/win32-x64 versions) and the registry (npm config get registry)"
  rm -rf "$deno_dir"
  mkdir -p "$deno_dir"
  tar -xzf "$tmp"/*.tgz -C "$deno_dir" --strip-components=1 ||
    die "cannot unpack the @deno/win32-x64 tarball"
  [[ "$(head -c 2 "$deno_dir/deno.exe" 2>/dev/null)" == MZ ]] ||
    die "@deno/win32-x64@$deno_version has no deno.exe" \
      "check the package's contents (npm view @deno/win32-x64@$deno_version)"
  echo "$deno_version" >"$deno_dir/.complete"
fi

# --- The Wine prefix -----------------------------------------------------------
prefix="$cache/prefix"
run_wine() {
  # mscoree and mshtml off: wineboot would otherwise look for Mono and Gecko.
  WINEPREFIX="$prefix" WINESERVER="$wine_server" WINEDEBUG=-all \
    WINEDLLOVERRIDES="mscoree,mshtml=" DISPLAY="" "$@"
}
if [[ ! -f "$prefix/.complete" ]]; then
  say "creating the Wine prefix $prefix"
  rebuilt=1
  rm -rf "$prefix"
  if [[ -n "$zlib_dll" ]]; then
    mkdir -p "$prefix/drive_c/windows/system32"
    cp "$zlib_dll" "$prefix/drive_c/windows/system32/"
  fi
  step "wineboot" run_wine "$wine_loader" wineboot --init ||
    die "wineboot could not create the prefix" "see $log"
  step "wineserver -w" run_wine "$wine_server" -w || true
  touch "$prefix/.complete"
fi
# Z: is how the Windows side reaches the repo; wineboot makes it, but a prefix
# copied from elsewhere might lack it.
[[ -L "$prefix/dosdevices/z:" ]] || ln -sfn / "$prefix/dosdevices/z:"

# --- The wrappers ----------------------------------------------------------------
write_wrapper() {
  local path="$1" body="$2"
  # Rewritten only when different, so a second run touches nothing.
  if [[ ! -x "$path" || "$(cat "$path")" != "$body" ]]; then
    printf '%s\n' "$body" >"$path.tmp"
    chmod +x "$path.tmp"
    mv "$path.tmp" "$path"
    return 1
  fi
}
env_line="export WINEPREFIX='$prefix' WINESERVER='$wine_server' \
WINEDEBUG=\"\${WINEDEBUG:--all}\" WINEDLLOVERRIDES=\"\${WINEDLLOVERRIDES:-mscoree,mshtml=}\""
fresh="$rebuilt"
write_wrapper "$cache/wineserver" "#!/bin/sh
# Written by tests/wine/setup.sh: the wineserver of the prefix deno-win uses.
$env_line
exec '$wine_server' \"\$@\"" || fresh=1
write_wrapper "$cache/deno-win" "#!/bin/sh
# Written by tests/wine/setup.sh: Deno $deno_version for Windows under Wine.
$env_line
exec '$wine_loader' '$deno_dir/deno.exe' \"\$@\"" || fresh=1

write_wrapper "$cache/wine" "#!/bin/sh
# Written by tests/wine/setup.sh: runs a Windows program on deno-win's prefix.
$env_line
exec '$wine_loader' \"\$@\"" || fresh=1

# --- The Ctrl+C / Ctrl+Break helper ------------------------------------------------
helper_src="$here/ctrl_event.c"
helper="$cache/ctrl-event.exe"
if [[ ! -f "$helper" || "$helper_src" -nt "$helper" ]]; then
  command -v x86_64-w64-mingw32-gcc >/dev/null ||
    die "x86_64-w64-mingw32-gcc is missing (it builds ctrl-event.exe)" \
      "run tools/setup.sh, or apt-get install gcc-mingw-w64-x86-64"
  step "build ctrl-event.exe" x86_64-w64-mingw32-gcc -municode -O2 -Wall \
    -Wextra -o "$helper.tmp" "$helper_src" -lpsapi ||
    die "cannot build $helper from $helper_src" "see $log"
  mv "$helper.tmp" "$helper"
fi

# The first start after any change proves the whole chain once.
[[ "$fresh" == 1 ]] && rm -f "$cache/.deno-win-ok"
if [[ ! -f "$cache/.deno-win-ok" ]]; then
  step "deno-win --version" "$cache/deno-win" --version ||
    die "the Windows Deno did not start under Wine" \
      "run WINEDEBUG=err+all $cache/deno-win --version to see why"
  "$cache/wineserver" -w || true
  touch "$cache/.deno-win-ok"
fi
echo "$cache/deno-win"
