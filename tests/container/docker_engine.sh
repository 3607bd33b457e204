#!/usr/bin/env bash
# Start Debian's Docker engine when none answers (no iptables, no bridge: builds use the host
# network). Prints the PID of a daemon it started, nothing when one was already running.
set -euo pipefail
source "$(dirname "$0")/env.sh"

"$DOCKER" info >/dev/null 2>&1 && exit 0
for tool in dockerd debootstrap mksquashfs; do
	command -v "$tool" >/dev/null || missing=1
done
if [ -n "${missing:-}" ]; then
	log "installing docker.io, debootstrap, squashfs-tools"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap squashfs-tools >/dev/null
fi
# A session of its own: a TERM to the test's process group (timeout) leaves the engine up for
# run.sh's cleanup, which removes the images and then stops it.
setsid dockerd --iptables=false --bridge=none >"$CACHE/dockerd.log" 2>&1 &
pid=$!
for _ in $(seq 60); do
	"$DOCKER" info >/dev/null 2>&1 && { echo "$pid"; exit 0; }
	kill -0 "$pid" 2>/dev/null || break
	sleep 1
done
log "dockerd did not come up:"
tail -n 20 "$CACHE/dockerd.log" >&2
exit 1
