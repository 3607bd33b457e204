#!/usr/bin/env bash
# Post-deploy script of every env here (envs/<name>.post-deploy.sh link to it): Snakemake runs it
# inside the new conda env. It installs this checkout's emogrid without dependencies, so the env's
# pinned packages stay exactly those of its YAML, and edits to src/ take effect.
set -euo pipefail
repo=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
python -m pip install --no-deps -e "$repo"
