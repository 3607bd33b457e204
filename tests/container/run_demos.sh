#!/usr/bin/env bash
# The demo workflow twice: on the host (the project's .venv) and with `--sdm apptainer` in the CPU
# image built by build_image.sh, converted to SIF. The SIF stands in for the published image: it
# sits where Snakemake keeps the pull of config's `container` URI (<prefix>/<md5 of URI>.simg), so
# the workflow runs with its default container setting and nothing is pulled.
# Writes timings.json and image.json (the record read out of the SIF) into $CACHE.
set -euo pipefail
source "$(dirname "$0")/env.sh"

prefix=$CACHE/apptainer-prefix
sif=$prefix/$(printf '%s' "$PUBLISHED_URI" | md5sum | cut -d' ' -f1).simg
mkdir -p "$prefix"
image_id=$("$DOCKER" image inspect -f '{{.Id}}' "$CI_IMAGE")
start=$(date +%s)
# A SIF made from this very image earlier in the same CI run is reused.
if [ ! -s "$sif" ] || [ "$(cat "$sif.image-id" 2>/dev/null)" != "$image_id" ]; then
	rm -f "$sif" "$sif.image-id"
	# gzip level 1: the squashfs step dominates the conversion on 2 cores (709 s at the default level
	# with the machine shared), and CI throws the SIF away after the run.
	apptainer build --mksquashfs-args "-Xcompression-level 1" "$sif" "docker-daemon://$CI_IMAGE" \
		>"$CACHE/sif-build.log" 2>&1 ||
		{ tail -n 30 "$CACHE/sif-build.log"; exit 1; }
	echo "$image_id" >"$sif.image-id"
fi
sif_seconds=$(($(date +%s) - start))
log "SIF for $PUBLISHED_URI: $sif ($(stat -c %s "$sif") bytes, ${sif_seconds} s)"
apptainer exec "$sif" cat /opt/emogrid/image.json >"$CACHE/image.json"

snakemake() {
	"$REPO/.venv/bin/snakemake" --snakefile "$REPO/Snakefile" --cores 2 \
		--configfile "$REPO/config/config.yaml" "$REPO/config/demo.yaml" "$@"
}
run_demo() { # run_demo NAME [snakemake args...]: prints the wall time of the workflow in seconds
	local name=$1 dir=$CACHE/demo-$1
	shift
	rm -rf "$dir" && mkdir -p "$dir" && ln -s "$REPO/config" "$dir/config"
	local t0
	t0=$(date +%s)
	# (profiles/default, the workflow profile, applies by itself.) The tail goes to stderr: stdout is
	# the caller's command substitution.
	(cd "$dir" && snakemake "$@" >"$CACHE/demo-$name.log" 2>&1) || { tail -n 60 "$CACHE/demo-$name.log" >&2; return 1; }
	echo $(($(date +%s) - t0))
	(cd "$dir" && snakemake "$@" --report results/demo/report.html >>"$CACHE/demo-$name.log" 2>&1) ||
		{ tail -n 30 "$CACHE/demo-$name.log" >&2; return 1; }
}
# The host run's rules call the .venv's `python`, as after `make demo`.
export PATH="$REPO/.venv/bin:$PATH"
host_seconds=$(run_demo host)
log "demo on the host: ${host_seconds} s"
container_seconds=$(run_demo container --sdm apptainer --apptainer-prefix "$prefix")
log "demo in the container: ${container_seconds} s"
cat >"$CACHE/timings.json" <<JSON
{"sif_build_s": $sif_seconds, "sif_bytes": $(stat -c %s "$sif"),
 "demo_host_s": $host_seconds, "demo_container_s": $container_seconds}
JSON
