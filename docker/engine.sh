#!/usr/bin/env bash
# A private Docker engine for dvp's containerised testnets.
#
#   docker/engine.sh start    install docker.io (+ docker-compose v1) if missing, start dockerd, wait for it
#   docker/engine.sh stop     remove dvp's containers, then stop exactly the dockerd this script started
#   docker/engine.sh status   is it running; prints the DOCKER_HOST to use
#   docker/engine.sh env      prints `export DOCKER_HOST=...` for eval
#
# The engine has no bridge, no iptables and no NAT: every dvp service uses host
# networking and listens on 127.0.0.1 only.  Its data root lives under the dvp
# cache, its socket, pid file and exec root under $DVP_DOCKER_RUN, so it cannot
# clash with a system Docker.  Needs root.
set -euo pipefail

DVP_CACHE=${DVP_CACHE:-$HOME/.cache/dvp}
DATA_ROOT=${DVP_DOCKER_DATA:-$DVP_CACHE/docker}
RUN=${DVP_DOCKER_RUN:-/run/dvp-docker}
SOCK=$RUN/docker.sock
PIDFILE=$RUN/dockerd.pid
LOG=$DATA_ROOT/dockerd.log
HOST=unix://$SOCK
STORAGE=${DVP_DOCKER_STORAGE:-}   # default: overlay2 when the data root allows it, else vfs

log() { echo "engine: $*" >&2; }

running() {
    [[ -f $PIDFILE ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}

reachable() {
    DOCKER_HOST=$HOST docker version --format '{{.Server.Version}}' >/dev/null 2>&1
}

install() {
    local pkgs=()
    command -v dockerd >/dev/null || pkgs+=(docker.io)
    command -v docker >/dev/null || pkgs+=(docker.io)
    if ! command -v docker-compose >/dev/null && ! docker compose version >/dev/null 2>&1; then
        pkgs+=(docker-compose)
    fi
    ((${#pkgs[@]})) || return 0
    [[ $(id -u) == 0 ]] || { log "need root to install ${pkgs[*]}"; exit 1; }
    log "installing ${pkgs[*]} (apt)"
    # Debian starts services on install unless policy-rc.d says no: dvp starts its own dockerd.
    local policy=/usr/sbin/policy-rc.d made=
    if [[ ! -e $policy ]]; then printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"; made=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${pkgs[@]}" >&2 \
        || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${pkgs[@]}" >&2; }
    [[ -z $made ]] || rm -f "$policy"
}

storage_driver() {
    if [[ -n $STORAGE ]]; then echo "$STORAGE"; return; fi
    local fs
    fs=$(stat -f -c %T "$DATA_ROOT" 2>/dev/null || echo unknown)
    case $fs in overlayfs|overlay|aufs|tmpfs) echo vfs ;; *) echo overlay2 ;; esac
}

start() {
    if running && reachable; then log "already running (pid $(cat "$PIDFILE")), DOCKER_HOST=$HOST"; return 0; fi
    install
    mkdir -p "$DATA_ROOT" "$RUN"
    local driver; driver=$(storage_driver)
    log "starting dockerd ($driver, data root $DATA_ROOT, socket $SOCK)"
    # setsid: its own session, so nothing of the caller's job control reaches it.
    setsid dockerd \
        --host "$HOST" --pidfile "$PIDFILE" --data-root "$DATA_ROOT" --exec-root "$RUN/exec" \
        --bridge=none --iptables=false --ip-masq=false --ip-forward=false \
        --storage-driver "$driver" --log-level warn \
        >>"$LOG" 2>&1 </dev/null &
    local pid=$! i
    for i in $(seq 1 120); do
        if reachable; then
            log "ready (pid $(cat "$PIDFILE" 2>/dev/null || echo $pid)); export DOCKER_HOST=$HOST"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            log "dockerd exited; last lines of $LOG:"; tail -n 20 "$LOG" >&2
            if [[ -z $STORAGE && $driver == overlay2 ]]; then
                log "retrying with the vfs storage driver"; STORAGE=vfs; start; return
            fi
            exit 1
        fi
        sleep 0.5
    done
    log "dockerd not reachable after 60 s; see $LOG"; exit 1
}

stop() {
    if ! [[ -f $PIDFILE ]]; then log "not running (no $PIDFILE)"; return 0; fi
    local pid; pid=$(cat "$PIDFILE")
    if reachable; then
        # Every container dvp starts carries this label (docker/*.yaml).
        local ids; ids=$(DOCKER_HOST=$HOST docker ps -aq --filter label=org.dvp.testnet 2>/dev/null || true)
        if [[ -n $ids ]]; then log "removing containers: $(echo $ids)"; DOCKER_HOST=$HOST docker rm -f $ids >/dev/null || true; fi
    fi
    if kill -0 "$pid" 2>/dev/null; then
        log "stopping dockerd (pid $pid)"
        kill -TERM "$pid"
        local i
        for i in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        if kill -0 "$pid" 2>/dev/null; then log "dockerd $pid still alive after 30 s: SIGKILL"; kill -KILL "$pid"; fi
    fi
    rm -f "$PIDFILE"
}

case ${1:-} in
    start) start ;;
    stop) stop ;;
    status) if running && reachable; then echo "running pid $(cat "$PIDFILE") DOCKER_HOST=$HOST"; else echo "stopped"; exit 1; fi ;;
    env) echo "export DOCKER_HOST=$HOST" ;;
    *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
