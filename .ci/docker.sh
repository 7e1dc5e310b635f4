#!/usr/bin/env bash
# Make a Docker engine answer on this machine, for CI and developers alike.
#
# Idempotent: installs docker.io only if dockerd is missing and starts dockerd only if
# `docker info` fails. There is no init system here, so dockerd runs in the background
# and logs to /tmp/dockerd.log. `--ip=127.0.0.1` keeps published ports on loopback.
set -euo pipefail

DEADLINE_SECONDS="${DOCKER_START_TIMEOUT:-60}"
LOG=/tmp/dockerd.log

log() { printf 'docker.sh: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

if ! command -v dockerd >/dev/null 2>&1; then
    log "dockerd not found; installing docker.io with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || die "apt-get update failed; check the Debian mirror"
    apt-get install -y -qq docker.io >/dev/null || die "apt-get install docker.io failed"
fi
command -v docker >/dev/null 2>&1 || die "the docker CLI is missing after install; install docker.io by hand"

if docker info >/dev/null 2>&1; then
    log "Docker engine already answering"
else
    if [[ -f /var/run/docker.pid ]] && kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
        # A second dockerd would fail on the pid file: wait for the one already starting.
        log "dockerd (pid $(cat /var/run/docker.pid)) is starting; waiting for it"
    else
        log "starting dockerd (log: $LOG)"
        # setsid: dockerd must outlive this script and not get the caller's signals.
        setsid dockerd --ip=127.0.0.1 >>"$LOG" 2>&1 < /dev/null &
    fi
    end=$(( $(date +%s) + DEADLINE_SECONDS ))
    until docker info >/dev/null 2>&1; do
        if (( $(date +%s) >= end )); then
            tail -n 20 "$LOG" >&2 || true
            die "dockerd did not answer 'docker info' within ${DEADLINE_SECONDS}s; see $LOG"
        fi
        sleep 0.5
    done
fi

docker info --format 'docker.sh: engine {{.ServerVersion}} up, storage driver {{.Driver}}, {{.Containers}} containers'
