#!/usr/bin/env bash
# `make test-container`: lint the Dockerfile, build the CPU variant of the image from it, convert it
# to SIF and run the demo workflow with `--sdm apptainer` and without, then check the two runs
# (check_demos.py). Needs root (Docker engine, debootstrap, mount namespaces) and Debian's
# packages; no GPU, no registry. Measurements go to $CACHE/measurements.json.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$REPO"
t0=$(date +%s)

log "hadolint containers/Dockerfile"
.venv/bin/hadolint --failure-threshold error containers/Dockerfile

dockerd_pid=$(bash tests/container/docker_engine.sh)
# Stop a Docker engine this script started, and only that one.
trap '[ -n "$dockerd_pid" ] && kill "$dockerd_pid" 2>/dev/null; wait "$dockerd_pid" 2>/dev/null || true' EXIT

bash tests/container/base_image.sh
bash tests/container/apptainer.sh
build_seconds=$(bash tests/container/build_image.sh)
bash tests/container/run_demos.sh

.venv/bin/python -m pytest -q -p no:cacheprovider tests/container/check_demos.py

python3 - "$CACHE" "$build_seconds" "$("$DOCKER" image inspect -f '{{.Size}}' "$CI_IMAGE")" <<'PY'
import json, sys
from pathlib import Path
cache, build_s, image_bytes = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
m = json.loads((cache / "timings.json").read_text()) | {"image_build_s": build_s, "image_bytes": image_bytes}
(cache / "measurements.json").write_text(json.dumps(m, indent=2) + "\n")
print(json.dumps(m))
PY
log "container test passed in $(($(date +%s) - t0)) s"
