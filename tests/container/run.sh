#!/usr/bin/env bash
# `make test-container`: lint the Dockerfile, build the CPU variant of the image from it, convert it
# to SIF and run the demo workflow with `--sdm apptainer` and without, check the two runs
# (check_demos.py), then build containers/emogrid.def (its %test included). Needs root (Docker
# engine, debootstrap, mount namespaces) and Debian's packages; no GPU, no registry.
# Measurements go to $CACHE/measurements.json.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$REPO"
t0=$(date +%s)

log "hadolint containers/Dockerfile"
.venv/bin/hadolint --failure-threshold error containers/Dockerfile

dockerd_pid=$(bash tests/container/docker_engine.sh)
cleanup() {
	# The images and the build cache last one run, like .container-ci/ (EMOGRID_KEEP_IMAGES=1 keeps them).
	if [ -z "${EMOGRID_KEEP_IMAGES:-}" ]; then
		"$DOCKER" rmi -f "$CI_IMAGE" "$BASE_TAG" >/dev/null 2>&1 || true
		"$DOCKER" builder prune -af >/dev/null 2>&1 || true
	fi
	# Stop a Docker engine this script started, and only that one.
	if [ -n "$dockerd_pid" ]; then
		kill "$dockerd_pid" 2>/dev/null || true
		wait "$dockerd_pid" 2>/dev/null || true
	fi
}
trap cleanup EXIT
trap 'exit 143' TERM

bash tests/container/base_image.sh
bash tests/container/apptainer.sh
build_seconds=$(bash tests/container/build_image.sh)
image_bytes=$("$DOCKER" image inspect -f '{{.Size}}' "$CI_IMAGE")
bash tests/container/run_demos.sh
.venv/bin/python -m pytest -q -p no:cacheprovider tests/container/check_demos.py
# The Apptainer definition's own build (its %test included) takes 5-10 min more; CI skips it to stay
# inside its time budget (EMOGRID_CONTAINER_DEF=0 in .ci/run). The def and the Dockerfile are kept
# equal by tests/test_containers.py.
if [ "${EMOGRID_CONTAINER_DEF:-1}" = "1" ]; then
	def_seconds=$(bash tests/container/build_def.sh)
else
	log "skipping the emogrid.def build (EMOGRID_CONTAINER_DEF=0)"
	def_seconds=0
fi

python3 - "$CACHE" "$build_seconds" "$image_bytes" "$def_seconds" <<'PY'
import json, sys
from pathlib import Path
cache, build_s, image_bytes, def_s = Path(sys.argv[1]), *map(int, sys.argv[2:])
m = json.loads((cache / "timings.json").read_text()) | {
    "image_build_s": build_s, "image_bytes": image_bytes, "def_sandbox_build_s": def_s}
(cache / "measurements.json").write_text(json.dumps(m, indent=2) + "\n")
print(json.dumps(m))
PY
log "container test passed in $(($(date +%s) - t0)) s"
