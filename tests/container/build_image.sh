#!/usr/bin/env bash
# Build the CPU variant of the emogrid image (emogrid-ci:cpu) from containers/Dockerfile: the local
# Debian base in place of the CUDA one, and the CPU torch 2.13.0 wheel from pip's local find-links
# in place of PyPI's CUDA build. Prints the build's wall time in seconds on stdout.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$REPO"

# `pip download` takes the wheel pip would install here: the CPU build on local disk. Anything
# else would be PyPI's multi-GB CUDA build, which CI must not pull.
rm -f containers/wheels/torch-*.whl
"$REPO/.venv/bin/python" -m pip download --quiet --no-deps --only-binary=:all: -d containers/wheels torch==2.13.0
wheel=$(ls containers/wheels/torch-*.whl)
case "$wheel" in
*+cpu-*) ;;
*) log "pip offers $wheel, not a CPU build of torch 2.13.0: refusing to build with it"; exit 1 ;;
esac

# The CA bundle pip trusts here reaches the build as a secret, never as a file in the image.
cert=${PIP_CERT:-$("$REPO/.venv/bin/python" -m pip config get global.cert 2>/dev/null || true)}
cert=${cert:-/etc/ssl/certs/ca-certificates.crt}
start=$(date +%s)
"$DOCKER" build --network host --progress plain -f containers/Dockerfile -t "$CI_IMAGE" \
	--build-arg BASE_IMAGE="$BASE_TAG" \
	--build-arg TORCH=torch==2.13.0+cpu \
	--build-arg IMAGE_NAME="$CI_IMAGE" \
	--build-arg GIT_COMMIT="$(git -C "$REPO" rev-parse HEAD)" \
	--secret id=pip_cert,src="$cert" \
	. >"$CACHE/docker-build.log" 2>&1 || { tail -n 40 "$CACHE/docker-build.log"; exit 1; }
seconds=$(($(date +%s) - start))
log "built $CI_IMAGE in ${seconds} s, $("$DOCKER" image inspect -f '{{.Size}}' "$CI_IMAGE") bytes"
echo "$seconds"
