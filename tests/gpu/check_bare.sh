#!/usr/bin/env bash
# Proves that the folder tests/gpu/prepare.sh makes runs on a bare machine:
# runs its run.sh inside a minimal Debian chroot (debootstrap --variant=
# minbase) from which jansson, xxhash, libnuma and cmocka are removed, as
# root. There is no GPU (and no CUDA driver) in it, so run.sh must find
# every library and then report "no GPU" and skip, with exit status 0.
#
#   tests/gpu/check_bare.sh [--rebuild] [CARRY_DIR]
#
# --rebuild checks run.sh's other path, the one it takes on a GPU machine
# whose driver is older than the carried CUDA runtime: the chroot also gets
# gcc, make, cmake and python3 (apt-get in the chroot, once, kept in a
# second tarball), this machine's CUDA toolkit mounted read-only at
# /usr/local/cuda and the source tree at /src, and run.sh runs with
# RUN_REBUILD=1: it must build test_gpu and bench_gpu from the headers,
# .pc files and pkgconf carried in deps/ (the chroot has no -dev package
# of them) and then skip as above.
#
# CARRY_DIR defaults to .gpu-carry/ in the source tree; it is made with
# prepare.sh when absent. The minimal system is made once with debootstrap
# (the suite and mirror of this machine, about 30 s with the network) and
# kept as a tarball in $STRATA_CHROOT_CACHE (default .gpu-chroot/ in the
# source tree, git-ignored); each check unpacks a fresh copy of it.
#
# Exit status: 0 when the check passed; 1 when it failed (the output of
# run.sh is shown); 2 when it cannot run here (not root, no debootstrap).
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
rebuild=0
[[ ${1:-} == --rebuild ]] && rebuild=1 && shift
carry=${1:-$src/.gpu-carry}
cache=${STRATA_CHROOT_CACHE:-$src/.gpu-chroot}

die() {
  echo "check_bare: $*" >&2
  exit "${2:-1}"
}
[[ $(id -u) == 0 ]] || die "needs root (chroot)" 2
command -v debootstrap >/dev/null ||
  die "needs debootstrap (apt-get install debootstrap)" 2
[[ -x $carry/run.sh ]] || bash "$src/tests/gpu/prepare.sh" "$carry"

# This machine's suite and its Debian mirror (deb822 sources or the
# one-line list).
suite=$(. /etc/os-release && echo "${VERSION_CODENAME:?no VERSION_CODENAME in /etc/os-release}")
mirror=$(sed -n 's/^URIs: *\([^ ]*\/debian\)\/\?$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)
[[ -n $mirror ]] || mirror=$(awk '$1 == "deb" && $2 ~ /\/debian\/?$/ {print $2; exit}' \
  /etc/apt/sources.list 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}
tarball=$cache/$suite-minbase.tar

if [[ ! -f $tarball ]]; then
  echo "check_bare: making a minimal $suite system with debootstrap ($mirror)"
  mkdir -p "$cache"
  tmp=$(mktemp -d "$cache/debootstrap.XXXXXX")
  if ! debootstrap --variant=minbase "$suite" "$tmp" "$mirror" >"$cache/debootstrap.log" 2>&1; then
    rm -rf "$tmp"
    die "debootstrap failed (see $cache/debootstrap.log)"
  fi
  rm -f "$tmp"/var/cache/apt/archives/*.deb
  tar -C "$tmp" -cf "$tarball.part" . && mv "$tarball.part" "$tarball"
  rm -rf "$tmp"
fi

# The build tools of --rebuild, added once to a copy of the minimal system.
if ((rebuild)) && [[ ! -f $cache/$suite-minbase-build.tar ]]; then
  echo "check_bare: adding gcc, make, cmake and python3 to the minimal system"
  tmp=$(mktemp -d "$cache/build.XXXXXX")
  tar -C "$tmp" -xf "$tarball"
  cp /etc/resolv.conf "$tmp/etc/resolv.conf"
  if ! chroot "$tmp" /bin/bash -c 'apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      gcc libc6-dev make cmake python3' >"$cache/build-tools.log" 2>&1; then
    rm -rf "$tmp"
    die "apt-get in the chroot failed (see $cache/build-tools.log)"
  fi
  rm -f "$tmp"/var/cache/apt/archives/*.deb
  tar -C "$tmp" -cf "$cache/$suite-minbase-build.tar.part" . &&
    mv "$cache/$suite-minbase-build.tar.part" "$cache/$suite-minbase-build.tar"
  rm -rf "$tmp"
fi
((rebuild)) && tarball=$cache/$suite-minbase-build.tar

root=$(mktemp -d "${TMPDIR:-/tmp}/strata-bare.XXXXXX")
cleanup() {
  for m in proc usr/local/cuda; do
    if mountpoint -q "$root/$m"; then umount "$root/$m"; fi
  done
  rm -rf "$root"
}
trap cleanup EXIT
tar -C "$root" -xf "$tarball"
# A bare GPU machine lacks these: minbase has libxxhash0 (apt uses it), so
# it goes, and nothing of them may be left.
rm -f "$root"/usr/lib/x86_64-linux-gnu/lib{jansson,xxhash,numa,cmocka}.so*
left=$(find "$root" -name 'libjansson.so*' -o -name 'libxxhash.so*' \
  -o -name 'libnuma.so*' -o -name 'libcmocka.so*' -o -name 'libcuda.so*' \
  -o -name jansson.h -o -name xxhash.h -o -name numa.h -o -name cmocka.h \
  -o -name 'pkg*conf*' -type f -path '*bin*')
[[ -z $left ]] || die "the chroot still has: $left"
cp -a "$carry" "$root/carry"
mount -t proc proc "$root/proc" 2>/dev/null || true
env=(PATH=/usr/sbin:/usr/bin:/sbin:/bin OUT=/out)
if ((rebuild)); then
  cuda=$(readlink -f "${CUDA_HOME:-/usr/local/cuda}")
  [[ -x $cuda/bin/nvcc ]] || die "no CUDA toolkit at $cuda to mount (set CUDA_HOME)" 2
  mkdir -p "$root/usr/local/cuda" "$root/src"
  # Debian's CMake 3.25 fails in FindCUDAToolkit on a CUDA without
  # libnvToolsExt (12.9 and later: "set_property could not find TARGET
  # CUDA::nvToolsExt"); the guard later CMakes have, which this machine's
  # CMake was given too.
  sed -i 's/^\( *\)if(CMAKE_MINIMUM_REQUIRED_VERSION VERSION_GREATER_EQUAL 3.25)/\1if(TARGET CUDA::nvToolsExt AND CMAKE_MINIMUM_REQUIRED_VERSION VERSION_GREATER_EQUAL 3.25)/' \
    "$root"/usr/share/cmake-*/Modules/FindCUDAToolkit.cmake
  mount --bind -o ro "$cuda" "$root/usr/local/cuda"
  # The tree as the GPU machine gets it: tracked and untracked, not ignored.
  git -C "$src" ls-files -co --exclude-standard -z |
    (cd "$src" && xargs -0 tar -cf - --no-recursion) | tar -C "$root/src" -xf -
  env+=(RUN_REBUILD=1 STRATA_SRC=/src PATH=/usr/local/cuda/bin:/usr/sbin:/usr/bin:/sbin:/bin)
fi

out=$root/out
set +e
chroot "$root" /usr/bin/env -i "${env[@]}" /bin/bash /carry/run.sh >"$root/stdout" 2>&1
rc=$?
set -e
fail=
((rc == 0)) || fail="run.sh exited $rc"
wants=("every library found")
((rebuild)) && wants+=("rebuilt")
for want in "${wants[@]}" "no GPU: test_gpu, bench_gpu and compute-sanitizer skipped" \
  "test_gpu: skipped"; do
  grep -qF "$want" "$out/gpu-results.txt" 2>/dev/null || fail="${fail:+$fail; }no line '$want' in \$OUT/gpu-results.txt"
done
cmp -s "$root/stdout" "$out/gpu-results.txt" || fail="${fail:+$fail; }stdout and \$OUT/gpu-results.txt differ"
if [[ -n $fail ]]; then
  cat "$root/stdout"
  die "FAILED: $fail"
fi
grep -E '^(test_gpu|bench_gpu):|^no GPU|library|^rebuil' "$out/gpu-results.txt"
echo "check_bare: passed (run.sh in a minimal $suite chroot without jansson, xxhash, numa, cmocka or a CUDA driver)"
