#!/usr/bin/env bash
# Build local stand-ins for the official images the compose files name, from the
# binaries the native runtime already has, for machines that cannot pull images.
#
#   docker/standins.sh            build every stand-in that is missing or out of date
#   docker/standins.sh --list     print "image<TAB>binary" and stop
#
# Each image is `docker import` of a tarball made here: the binary, the shared
# libraries `ldd` lists (with the dynamic loader), /tmp and a HOME.  The tarball is
# made reproducibly (sorted, mtime 0, numeric root owner), its SHA-256 is stored in
# the image label org.dvp.content, and an image whose label matches is skipped.
# With registry access, pull the official images instead (docker/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."

DVP_CACHE=${DVP_CACHE:-$HOME/.cache/dvp}
source docker/versions.env
ANVIL=${DVP_ANVIL:-node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil}
BTCD=${DVP_BTCD:-$DVP_CACHE/btcd-$BTCD_VERSION/bin/btcd}
# elementsd is optional (users unpack the official release there): its stand-in is made only when present.
ELEMENTSD=${DVP_ELEMENTSD:-$DVP_CACHE/elements-$ELEMENTS_VERSION/bin/elementsd}
WORK=$DVP_CACHE/standins
PATH_ENV=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# image | binary on the host | path in the image | entrypoint (as the official image has it)
IMAGES=(
    "$DVP_FOUNDRY_IMAGE|$ANVIL|/usr/local/bin/anvil|[\"/bin/sh\", \"-c\"]"
    "$DVP_BTCD_IMAGE|$BTCD|/bin/btcd|[\"btcd\"]"
)
[[ -x $ELEMENTSD ]] && IMAGES+=("$DVP_ELEMENTS_IMAGE|$ELEMENTSD|/usr/local/bin/elementsd|[\"elementsd\"]")

# Fabric is optional too: its three images are made when an install is present (DVP_FABRIC_HOME, else
# the cache; the release layout bin/ config/ builders/ccaas or the Go build's bin/ sampleconfig/
# ccaas_builder), laid out as the official images are: binaries on /usr/local/bin, configuration in
# /etc/hyperledger/fabric, the ccaas builder in /opt/hyperledger/ccaas_builder.  The 5th field
# lists further "host path=image path" entries (files or directories): only what the official release
# archive holds (bin/, config/core.yaml and orderer.yaml, builders/ccaas/); the network makes its own MSPs.
FABRIC_HOME=${DVP_FABRIC_HOME:-$DVP_CACHE/fabric-$FABRIC_COMMIT}
FABRIC_CFG=$FABRIC_HOME/config; [[ -f $FABRIC_CFG/core.yaml ]] || FABRIC_CFG=$FABRIC_HOME/sampleconfig
FABRIC_CCAAS=$FABRIC_HOME/builders/ccaas; [[ -d $FABRIC_CCAAS/bin ]] || FABRIC_CCAAS=$FABRIC_HOME/ccaas_builder
if [[ -x $FABRIC_HOME/bin/peer && -x $FABRIC_HOME/bin/orderer && -f $FABRIC_CFG/core.yaml && -x $FABRIC_CCAAS/bin/build ]]; then
    FB=$FABRIC_HOME/bin; ETC=/etc/hyperledger/fabric
    IMAGES+=(
        "$DVP_FABRIC_ORDERER_IMAGE|$FB/orderer|/usr/local/bin/orderer|[\"orderer\"]|$FABRIC_CFG/orderer.yaml=$ETC/orderer.yaml"
        "$DVP_FABRIC_PEER_IMAGE|$FB/peer|/usr/local/bin/peer|[\"peer\", \"node\", \"start\"]|$FABRIC_CFG/core.yaml=$ETC/core.yaml $FABRIC_CCAAS/bin=/opt/hyperledger/ccaas_builder/bin"
        # The tools container idles on sleep while the launcher runs the CLIs in it.
        "$DVP_FABRIC_TOOLS_IMAGE|$FB/peer|/usr/local/bin/peer|[]|$FB/configtxgen=/usr/local/bin/configtxgen $FB/cryptogen=/usr/local/bin/cryptogen $FB/osnadmin=/usr/local/bin/osnadmin $(command -v sleep)=/usr/bin/sleep $FABRIC_CFG/core.yaml=$ETC/core.yaml"
    )
fi

log() { echo "standins: $*" >&2; }

libs() {  # $1 executable, $2 staging dir: its shared libraries and the loader, at the paths it asks for
    local lib
    for lib in $(ldd "$1" 2>/dev/null | grep -oE '/[^ ]+' || true); do
        mkdir -p "$2$(dirname "$lib")"
        cp -L "$lib" "$2$lib"
        # A library found by the binary's rpath beside it (a release archive's lib/, e.g. Elements'
        # libevent via $ORIGIN/../lib) is not there once the binary moves: also on the default path.
        case $lib in /lib/*|/lib64/*|/usr/lib/*|/usr/lib64/*) ;; *) mkdir -p "$2/usr/lib"; cp -L "$lib" "$2/usr/lib/" ;; esac
    done
}

rootfs() {  # $1 binary, $2 path in image, $3 staging dir, $4 extra "src=dest" entries
    local bin=$1 dest=$2 root=$3 extra=${4:-} entry src to f
    rm -rf "$root"; mkdir -p "$root$(dirname "$dest")" "$root/tmp" "$root/root" "$root/etc"
    chmod 1777 "$root/tmp"
    install -m 0755 "$bin" "$root$dest"
    libs "$bin" "$root"
    for entry in $extra; do
        src=${entry%%=*}; to=${entry#*=}
        mkdir -p "$root$(dirname "$to")"
        cp -rL "$src" "$root$to"
        for f in $(find "$root$to" -type f -perm -u+x); do libs "$f" "$root"; done
    done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' >"$root/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
    printf '127.0.0.1 localhost\n' >"$root/etc/hosts"
}

build() {  # $1 image $2 binary $3 dest $4 entrypoint $5 extra entries
    local image=$1 bin=$2 dest=$3 entry=$4 extra=${5:-} name root tar sum have
    [[ -x $bin ]] || { log "$bin missing: run \`make setup\` first"; exit 1; }
    name=${image//[\/:]/_}
    root=$WORK/$name/rootfs; tar=$WORK/$name/rootfs.tar
    mkdir -p "$WORK/$name"
    rootfs "$bin" "$dest" "$root" "$extra"
    tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$root" -cf "$tar" .
    sum=$(sha256sum "$tar" | cut -d' ' -f1)
    have=$(docker image inspect -f '{{index .Config.Labels "org.dvp.content"}}' "$image" 2>/dev/null || true)
    if [[ $have == "$sum" ]]; then log "$image up to date (${sum:0:12})"; return; fi
    log "importing $image from $bin (${sum:0:12})"
    docker import \
        --change "ENTRYPOINT $entry" \
        --change "ENV PATH=$PATH_ENV HOME=/root FABRIC_CFG_PATH=/etc/hyperledger/fabric" \
        --change "WORKDIR /root" \
        --change "LABEL org.dvp.content=$sum org.dvp.standin=true" \
        "$tar" "$image" >/dev/null
}

if [[ ${1:-} == --list ]]; then
    for spec in "${IMAGES[@]}"; do IFS='|' read -r image bin _ _ _ <<<"$spec"; printf '%s\t%s\n' "$image" "$bin"; done
    exit 0
fi
docker version --format '{{.Server.Version}}' >/dev/null || { log "no Docker engine reachable (DOCKER_HOST=${DOCKER_HOST:-default}); docker/engine.sh start"; exit 1; }
for spec in "${IMAGES[@]}"; do
    IFS='|' read -r image bin dest entry extra <<<"$spec"
    start=$(date +%s.%N)
    build "$image" "$bin" "$dest" "$entry" "$extra"
    log "$image: $(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s"
done
