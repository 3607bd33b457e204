#!/usr/bin/env bash
# Post-deploy script of every env here (envs/<name>.post-deploy.sh link to it): Snakemake runs it
# inside the new conda env. It installs this checkout's emogrid without dependencies, so the env's
# pinned packages stay exactly those of its YAML, and edits to src/ take effect.
#
# Snakemake runs a *copy* of this script (next to the env, under .snakemake/conda/ or --conda-prefix),
# so its own location says nothing about the checkout. The checkout is EMOGRID_REPO if set, else the
# directory Snakemake runs in (the checkout, where `snakemake` is started), else where this file lies.
set -euo pipefail
is_emogrid() { [ -f "$1/pyproject.toml" ] && grep -q '^name = "emogrid"' "$1/pyproject.toml"; }
for repo in "${EMOGRID_REPO:-}" "$PWD" "$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)"; do
    if [ -n "$repo" ] && is_emogrid "$repo"; then
        exec python -m pip install --no-deps -e "$repo"
    fi
done
echo "emogrid post-deploy: no emogrid checkout in EMOGRID_REPO (${EMOGRID_REPO:-unset}) or $PWD;" \
    "run snakemake from the checkout or set EMOGRID_REPO to it" >&2
exit 1
