#!/usr/bin/env bash
# Builds the CUDA path here (a machine with the CUDA toolkit and the build
# dependencies, no GPU needed) and gathers into one folder everything a bare
# GPU machine needs to run it: test_gpu, bench_gpu, the shared libraries
# they load that such a machine lacks, run.sh and a manifest, and in deps/
# what run.sh needs to rebuild them there with build.sh when that
# machine's driver is too old for the runtime linked here.
#
#   tests/gpu/prepare.sh [CARRY_DIR [BUILD_DIR]]
#
# CARRY_DIR defaults to .gpu-carry/ in the source tree (git-ignored: carry
# it to the GPU machine as it is), BUILD_DIR to /tmp/strata-gpu-build.
# There: CARRY_DIR/run.sh (tests/gpu/README.md).
#
# Why it is built here and not there: the GPU machine has the toolkit but
# none of jansson, xxhash, libnuma, cmocka, pkg-config's modules or a
# package archive, and its minutes are few. The CUDA runtime is linked
# statically (CUDA::cudart_static, as the CMake files already do), so the
# only CUDA piece the binaries need there is the driver (libcuda.so.1),
# which always comes with the GPU; the driver must be at least as new as
# the runtime linked here (the manifest names it; run.sh compares it with
# what the machine's driver reports, and rebuilds there when it is older).
#
# Exit status: 0 when the folder is complete; 1 on a build failure; 2 when
# the toolkit or a library cannot be found.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
carry=${1:-$src/.gpu-carry}
build=${2:-/tmp/strata-gpu-build}

die() {
  echo "prepare: $*" >&2
  exit "${2:-1}"
}

echo "prepare: building test_gpu and bench_gpu in $build"
rc=0
toolkit=$(bash "$src/tests/gpu/build.sh" "$src" "$build" "$build.log") || rc=$?
((rc != 2)) || exit 2
((rc == 0)) || die "build failed (see $build.log)"
echo "prepare: $toolkit"

bins=("$build/tests/gpu/test_gpu" "$build/tools/bench/bench_gpu")
rm -rf "$carry"
mkdir -p "$carry/bin" "$carry/lib"
cp "${bins[@]}" "$carry/bin/"
cp "$src/tests/gpu/run.sh" "$src/tests/gpu/build.sh" "$carry/"

# The libraries to carry: everything ldd resolves except the C library's
# own (libc, libm, libdl, librt, libpthread, libresolv, the loader), which
# must be the machine's: a carried libc would not match its loader. Each is
# copied as the real file under its soname, the name the binaries ask for.
is_glibc() {
  case $1 in
  libc.so.* | libm.so.* | libdl.so.* | librt.so.* | libpthread.so.* | \
    libresolv.so.* | ld-linux*.so.* | linux-vdso.so.*) return 0 ;;
  esac
  return 1
}
declare -A carried=()
for b in "${bins[@]}"; do
  while read -r name arrow path _; do
    [[ $arrow == "=>" ]] || continue
    is_glibc "$name" && continue
    [[ $path == /* ]] || die "$(basename "$b") needs $name, which ldd cannot find here" 2
    carried[$name]=$path
  done < <(ldd "$b")
done
for name in "${!carried[@]}"; do
  cp -L "${carried[$name]}" "$carry/lib/$name"
done

# deps/: what run.sh needs to rebuild the programs there against the
# machine's own toolkit when its driver is older than the runtime linked
# here (build.sh): the four libraries' headers; each library again as
# deps/lib/libNAME.so, the name the linker looks for (a copy, not a
# symlink, which a carry may drop: 240 KiB in all; its soname inside is
# the carried one's, so the programs built load lib/ as before); a .pc
# file for each pointing at them; and pkgconf (as deps/bin/pkg-config; its
# library goes to lib/).
deps=$carry/deps
mkdir -p "$deps/include" "$deps/lib" "$deps/pkgconfig" "$deps/bin"
for mod in jansson libxxhash numa cmocka; do
  pc=$(pkg-config --variable=pcfiledir "$mod")/$mod.pc
  pkg=$(dpkg -S "$pc" | cut -d: -f1) || die "no Debian package owns $pc" 2
  dpkg -L "$pkg" | grep '^/usr/include/.*\.h$' | while read -r h; do
    mkdir -p "$deps/include/$(dirname "${h#/usr/include/}")"
    cp "$h" "$deps/include/${h#/usr/include/}"
  done
  libs=
  for l in $(pkg-config --libs-only-l "$mod"); do
    so=("$carry/lib/lib${l#-l}.so."*)
    [[ -f ${so[0]} ]] ||
      die "$mod: lib${l#-l}.so.* is not among the carried libraries" 2
    cp "${so[0]}" "$deps/lib/lib${l#-l}.so"
    libs+=" $l"
  done
  cat >"$deps/pkgconfig/$mod.pc" <<PC
prefix=\${pcfiledir}/..
Name: $mod
Description: $mod as carried by tests/gpu/prepare.sh
Version: $(pkg-config --modversion "$mod")
Libs: -L\${prefix}/lib$libs
Cflags: -I\${prefix}/include
PC
done
pkgconf=$(readlink -f "$(command -v pkg-config)")
cp "$pkgconf" "$deps/bin/pkg-config"
while read -r name arrow path _; do
  [[ $arrow == "=>" && $path == /* ]] || continue
  is_glibc "$name" || cp -L "$path" "$carry/lib/$name"
done < <(ldd "$pkgconf")

# The versions the GPU machine must match: the CUDA runtime linked in (its
# minimum driver), and the newest glibc symbol version any carried file
# needs.
cuda_version=${toolkit##*release }
glibc_needed=$(for f in "$carry"/bin/* "$carry"/lib/* "$deps"/bin/*; do
  objdump -T "$f" | grep -o 'GLIBC_[0-9.]*'
done | sort -uV | tail -n 1)

{
  echo "# strata GPU carry: made by tests/gpu/prepare.sh; run run.sh on the GPU machine."
  echo "source: $(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$src" diff --quiet HEAD 2>/dev/null || echo ' (with local changes)')"
  echo "built: $(date -u '+%Y-%m-%d %H:%M UTC') on $(. /etc/os-release && echo "$PRETTY_NAME"), $(uname -m)"
  echo "cuda_runtime: $cuda_version (static; needs a driver supporting CUDA $cuda_version)"
  echo "glibc_needed: ${glibc_needed#GLIBC_}"
  echo "files:"
  (cd "$carry" && find . -type f ! -name MANIFEST | sort | while read -r f; do
    printf '  %-28s %9d bytes  sha256 %s\n' "${f#./}" "$(stat -c %s "$f")" \
      "$(sha256sum "$f" | cut -c1-16)"
  done)
} >"$carry/MANIFEST"

cat "$carry/MANIFEST"
echo "prepare: $carry is $(du -sh "$carry" | cut -f1) ($(du -sb "$carry" | cut -f1) bytes; the carry limit is 64 MiB)"
