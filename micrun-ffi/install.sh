#!/bin/sh
# Installs libmicrun: the shared library (with its SONAME symlink and the
# development symlink), the static library, the C headers (micrun_codec.h, micrun.h) and micrun.pc.
#
#   cargo build --release -p micrun-ffi
#   micrun-ffi/install.sh PREFIX [BUILD_DIR]
#
# BUILD_DIR is where cargo put libmicrun.so and libmicrun.a (default:
# target/release). PREFIX must be absolute; files go to $DESTDIR$PREFIX, so
# packagers can stage them. LIBDIR (default PREFIX/lib) may be set for a
# multiarch layout. Needs only a POSIX shell, install, ln and sed.
set -eu

usage() {
    echo "usage: $0 PREFIX [BUILD_DIR]" >&2
    exit 2
}
[ $# -ge 1 ] && [ $# -le 2 ] || usage
prefix=$1
case $prefix in
/*) ;;
*)
    echo "install.sh: PREFIX must be an absolute path, got '$prefix'" >&2
    exit 2
    ;;
esac

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=${2:-$root/target/release}
libdir=${LIBDIR:-$prefix/lib}
includedir=$prefix/include
destdir=${DESTDIR:-}

version=$(sed -n 's/^version *= *"\([0-9][0-9.]*\)".*/\1/p' "$root/Cargo.toml" | head -n 1)
[ -n "$version" ] || {
    echo "install.sh: no version in $root/Cargo.toml" >&2
    exit 1
}
major=${version%%.*}

for f in libmicrun.so libmicrun.a; do
    [ -f "$build/$f" ] || {
        echo "install.sh: $build/$f is missing; build it first: cargo build --release -p micrun-ffi" >&2
        exit 1
    }
done

install -d "$destdir$libdir" "$destdir$libdir/pkgconfig" "$destdir$includedir"
# The real file carries the full version; the SONAME link (libmicrun.so.0) is what
# programs load; libmicrun.so is what the linker finds for -lmicrun.
install -m 0755 "$build/libmicrun.so" "$destdir$libdir/libmicrun.so.$version"
ln -sf "libmicrun.so.$version" "$destdir$libdir/libmicrun.so.$major"
ln -sf "libmicrun.so.$major" "$destdir$libdir/libmicrun.so"
install -m 0644 "$build/libmicrun.a" "$destdir$libdir/libmicrun.a"
install -m 0644 "$root/include/micrun_codec.h" "$destdir$includedir/micrun_codec.h"
install -m 0644 "$root/include/micrun.h" "$destdir$includedir/micrun.h"
sed -e "s|@PREFIX@|$prefix|g" -e "s|@LIBDIR@|$libdir|g" -e "s|@VERSION@|$version|g" \
    "$here/micrun.pc.in" >"$destdir$libdir/pkgconfig/micrun.pc"
chmod 0644 "$destdir$libdir/pkgconfig/micrun.pc"
echo "installed libmicrun $version into $destdir$prefix"
