#!/usr/bin/env bash
# Installs the embedded ClickHouse engine (libchdb.so) into a per-user cache,
# outside the repository. A second run with the library in place does nothing.
#
#   APIMETER_CACHE_DIR   cache root (default: ~/.cache/apimeter)
#
# Prints the library's path on success.
set -euo pipefail

pkg="@chdb/lib-linux-x64-gnu"
version="26.7.3-stable.1"
# sha256 of the npm tarball of $pkg@$version.
want_sha="c0d32b129e988f2b9a9a31c9141aecf5e1e2453f9a079efc4d36ab8e3f92b2ad"

cache="${APIMETER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/apimeter}"
dest="$cache/chdb/$version"
lib="$dest/libchdb.so"

if [[ -f "$lib" && -f "$dest/.sha256" && "$(cat "$dest/.sha256")" == "$want_sha" ]]; then
  echo "$lib"
  exit 0
fi

case "$(uname -s)/$(uname -m)" in
  Linux/x86_64) ;;
  *) echo "chdb: the embedded engine is packaged for Linux x86_64 only; set CLICKHOUSE_URL to use a ClickHouse server" >&2; exit 1 ;;
esac
command -v npm >/dev/null || { echo "chdb: npm is needed to fetch $pkg@$version" >&2; exit 1; }

work="$(mktemp -d "${TMPDIR:-/tmp}/apimeter-chdb.XXXXXX")"
trap 'rm -rf "$work"' EXIT

echo "chdb: fetching $pkg@$version (about 180 MB, once)" >&2
(cd "$work" && npm pack --silent "$pkg@$version" >/dev/null)
tarball="$(ls "$work"/*.tgz)"
got_sha="$(sha256sum "$tarball" | cut -d' ' -f1)"
if [[ "$got_sha" != "$want_sha" ]]; then
  echo "chdb: checksum mismatch for $pkg@$version: got $got_sha, want $want_sha" >&2
  exit 1
fi

tar -xzf "$tarball" -C "$work" package/libchdb.so
mkdir -p "$dest"
mv "$work/package/libchdb.so" "$lib.tmp"
mv "$lib.tmp" "$lib"
echo "$want_sha" > "$dest/.sha256"
echo "$lib"
