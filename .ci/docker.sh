#!/usr/bin/env bash
# Make a Docker engine answer on this machine, for CI and developers alike.
#
# Idempotent: installs docker.io only if dockerd is missing and starts dockerd only if
# `docker info` fails. There is no init system here, so dockerd runs in the background
# and logs to $DOCKERD_LOG. `--ip=127.0.0.1` keeps published ports on loopback.
#
# A machine restored from a snapshot (or a killed dockerd) leaves pid files behind whose
# numbers may now belong to other processes. dockerd would refuse to start on its own
# stale pid file, and it would wait forever on a containerd pid file naming a live
# process that is not containerd. So a pid file is trusted only when /proc says the
# process is the right program; otherwise it is removed before dockerd starts. An engine
# that never answers is stopped and started once more before giving up.
set -euo pipefail

DEADLINE_SECONDS="${DOCKER_START_TIMEOUT:-90}"
LOG="${DOCKERD_LOG:-/tmp/dockerd.log}"
DOCKERD_PIDFILE="${DOCKERD_PIDFILE:-/var/run/docker.pid}"
CONTAINERD_PIDFILE="${CONTAINERD_PIDFILE:-/var/run/docker/containerd/containerd.pid}"

log() { printf 'docker.sh: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# The pid in $1 if that process runs the program named $2, else nothing.
live_pid() {
    local pidfile=$1 program=$2 pid comm
    [[ -s $pidfile ]] || return 0
    pid=$(tr -dc '0-9' < "$pidfile")
    [[ -n $pid ]] || return 0
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 0
    [[ $comm == "$program" ]] && echo "$pid"
    return 0
}

# Remove pid files whose process is gone or is some other program.
clear_stale_pidfiles() {
    local pidfile program
    for pair in "$DOCKERD_PIDFILE:dockerd" "$CONTAINERD_PIDFILE:containerd"; do
        pidfile=${pair%:*} program=${pair##*:}
        if [[ -e $pidfile && -z $(live_pid "$pidfile" "$program") ]]; then
            log "removing stale $pidfile (its pid $(tr -dc '0-9' < "$pidfile") is not a live $program)"
            rm -f "$pidfile"
        fi
    done
}

start_dockerd() {
    clear_stale_pidfiles
    log "starting dockerd (log: $LOG)"
    # setsid: dockerd must outlive this script and not get the caller's signals.
    setsid dockerd --ip=127.0.0.1 -p "$DOCKERD_PIDFILE" >>"$LOG" 2>&1 < /dev/null &
}

# Wait until `docker info` answers; false after DEADLINE_SECONDS, with a line every 15 s.
wait_for_engine() {
    local start=$SECONDS next=15
    until docker info >/dev/null 2>&1; do
        if (( SECONDS - start >= DEADLINE_SECONDS )); then
            return 1
        fi
        if (( SECONDS - start >= next )); then
            log "still waiting for dockerd ($(( SECONDS - start ))s of ${DEADLINE_SECONDS}s)"
            next=$(( next + 15 ))
        fi
        sleep 0.5
    done
}

stop_dockerd() {
    local pid
    pid=$(live_pid "$DOCKERD_PIDFILE" dockerd)
    [[ -n $pid ]] || return 0
    log "stopping dockerd (pid $pid) that does not answer"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.5
    done
    kill -KILL "$pid" 2>/dev/null || true
}

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
    if pid=$(live_pid "$DOCKERD_PIDFILE" dockerd) && [[ -n $pid ]]; then
        log "dockerd (pid $pid) is already starting; waiting for it"
    else
        start_dockerd
    fi
    if ! wait_for_engine; then
        tail -n 20 "$LOG" >&2 || true
        log "dockerd did not answer within ${DEADLINE_SECONDS}s; restarting it once"
        stop_dockerd
        start_dockerd
        wait_for_engine || {
            tail -n 20 "$LOG" >&2 || true
            die "dockerd did not answer 'docker info' within ${DEADLINE_SECONDS}s twice; see $LOG"
        }
    fi
fi

docker info --format 'docker.sh: engine {{.ServerVersion}} up, storage driver {{.Driver}}, {{.Containers}} containers'
