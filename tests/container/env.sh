# Settings shared by the container CI scripts (sourced, not run).
# Everything they build lives under CACHE (git-ignored, outside the Docker build context): the
# Debian base rootfs, the Debian sid root Apptainer runs from, the SIF and the two demo runs. A
# second script of the same CI run reuses what an earlier one left there; nothing goes into git.
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=${EMOGRID_CONTAINER_CACHE:-$REPO/.container-ci}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
BASE_TAG=emogrid-base:bookworm      # the local stand-in for the CUDA runtime base
CI_IMAGE=emogrid-ci:cpu              # the CPU variant built from containers/Dockerfile
# The image the workflow names by default (config key `container`): the test's SIF stands in for it.
PUBLISHED_URI=$(sed -n 's/^container: *//p' "$REPO/config/config.yaml")
[ -n "$PUBLISHED_URI" ] || { echo "config/config.yaml has no 'container:' line" >&2; exit 1; }
DOCKER=/usr/bin/docker               # Debian's 20.10 client: BuildKit without a `# syntax=` line
export DOCKER_BUILDKIT=1
export PATH="$CACHE/bin:$PATH"       # the apptainer wrapper
export EMOGRID_APPTAINER_HOST_PATHS=$REPO  # bound into the sid root even under /var (the wrapper)
mkdir -p "$CACHE"

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# A root filesystem for `docker import`: /dev, /proc and /sys left empty. A device node under /dev
# (/dev/full, /dev/zero) would be read as an endless file and fill the disk.
import_rootfs() {
	local root=$1 tag=$2
	tar -C "$root" --numeric-owner --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -cf - . |
		"$DOCKER" import - "$tag"
}

# `debootstrap --variant=minbase SUITE` into ROOT (replacing what is there), with the log under CACHE
# and its tail on failure. The mirror here serves indexes older than their Valid-Until, so apt inside
# the root is told not to check it.
debootstrap_minbase() {
	local suite=$1 root=$2
	rm -rf "$root"
	debootstrap --variant=minbase "$suite" "$root" "$MIRROR" >"$CACHE/debootstrap-$suite.log" 2>&1 ||
		{ tail -n 20 "$CACHE/debootstrap-$suite.log"; exit 1; }
	echo 'Acquire::Check-Valid-Until "false";' >"$root/etc/apt/apt.conf.d/99ci-mirror"
}
