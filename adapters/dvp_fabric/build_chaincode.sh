#!/usr/bin/env bash
# Builds the dvp chaincode server (contracts/fabric/chaincode) into the cache,
# keyed by a hash of its sources so a changed contract is rebuilt.  Prints the
# binary's path on its last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../../contracts/fabric" && pwd)
CACHE=${DVP_CACHE:-$HOME/.cache/dvp}
hash=$(cd "$src" && find . -name '*.go' -o -name 'go.mod' -o -name 'go.sum' | LC_ALL=C sort \
  | xargs sha256sum | sha256sum | cut -c1-16)
out=$CACHE/dvpcc-$hash/dvpcc
if [ ! -x "$out" ]; then
  mkdir -p "$(dirname "$out")"
  (cd "$src/chaincode" && go build -trimpath -o "$out.tmp" .) >&2
  mv "$out.tmp" "$out"
fi
echo "$out"
