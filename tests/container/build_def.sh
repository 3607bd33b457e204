#!/usr/bin/env bash
# Build containers/emogrid.def for real: Bootstrap docker-daemon from the local Debian base, the
# CPU torch wheel bound in from containers/wheels/ (build_image.sh puts it there), pip's CA bound
# in for %post only (a copy in $CACHE/pip-secret/, deleted with the cache). Apptainer runs the def's %test at the end of the build. The result is a
# sandbox folder, not a SIF: %post and %test are what is checked here, and the Dockerfile's image
# already goes through the SIF step (run_demos.sh). Prints the build's wall time in seconds.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$REPO"

wheel=$(ls containers/wheels/torch-*+cpu-*.whl)
cert=${PIP_CERT:-$("$REPO/.venv/bin/python" -m pip config get global.cert 2>/dev/null || true)}
cert=${cert:-/etc/ssl/certs/ca-certificates.crt}
# The CA goes in as /run/secrets/pip_cert, as the build secret of the Docker build does.
mkdir -p "$CACHE/pip-secret" && cp "$cert" "$CACHE/pip-secret/pip_cert"
start=$(date +%s)
rm -rf "$CACHE/def-sandbox"
apptainer build --sandbox \
	--bind "$REPO/containers/wheels:/opt/emogrid/wheels" --bind "$CACHE/pip-secret:/run/secrets" \
	--build-arg BOOTSTRAP=docker-daemon --build-arg BASE_IMAGE="$BASE_TAG" \
	--build-arg TORCH="torch==2.13.0+cpu" --build-arg IMAGE_NAME=emogrid-ci:def \
	"$CACHE/def-sandbox" containers/emogrid.def >"$CACHE/def-build.log" 2>&1 ||
	{ tail -n 40 "$CACHE/def-build.log"; exit 1; }
seconds=$(($(date +%s) - start))
# %test printed the image's record: it must name the def build and the CPU torch from the wheel.
grep -q '"image": "emogrid-ci:def"' "$CACHE/def-build.log"
grep -q '"torch": "2.13.0+cpu"' "$CACHE/def-build.log"
log "built containers/emogrid.def in ${seconds} s ($(basename "$wheel")); %test passed"
echo "$seconds"
