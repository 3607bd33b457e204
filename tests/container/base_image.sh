#!/usr/bin/env bash
# The local base image (emogrid-base:bookworm) that stands in for the CUDA runtime base in CI:
# `debootstrap --variant=minbase bookworm`, imported into Docker. Reused when it already exists.
set -euo pipefail
source "$(dirname "$0")/env.sh"

if "$DOCKER" image inspect "$BASE_TAG" >/dev/null 2>&1; then
	log "base image $BASE_TAG already there"
	exit 0
fi
root=$CACHE/rootfs-bookworm
if [ ! -x "$root/usr/bin/apt-get" ]; then
	log "debootstrap bookworm into $root"
	# The Valid-Until setting it writes stays in the image: the base, not the Dockerfile, says so.
	debootstrap_minbase bookworm "$root"
fi
rm -rf "$root/var/cache/apt/archives/"*.deb "$root/var/lib/apt/lists/"*
import_rootfs "$root" "$BASE_TAG" >/dev/null
log "imported $BASE_TAG ($("$DOCKER" image inspect -f '{{.Size}}' "$BASE_TAG") bytes)"
