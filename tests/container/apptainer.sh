#!/usr/bin/env bash
# Apptainer for CI: Debian sid's apptainer package needs a newer glibc than bookworm's, so it runs
# from a debootstrapped sid root behind a wrapper (apptainer-wrapper, copied to $CACHE/bin/apptainer
# where Snakemake finds it on PATH).
set -euo pipefail
source "$(dirname "$0")/env.sh"

root=$CACHE/rootfs-sid
wrapper=$CACHE/bin/apptainer
if [ ! -x "$root/usr/bin/apptainer" ]; then
	log "debootstrap sid into $root and install apptainer"
	debootstrap_minbase sid "$root"
	unshare --mount --propagation private bash -c "
		mount -t proc proc '$root/proc'
		chroot '$root' apt-get update -qq
		DEBIAN_FRONTEND=noninteractive chroot '$root' apt-get install -y -qq --no-install-recommends \
			apptainer squashfs-tools ca-certificates
	" >"$CACHE/apptainer-install.log" 2>&1 || { tail -n 20 "$CACHE/apptainer-install.log"; exit 1; }
fi

# minbase leaves no /etc/hosts, and apptainer's build reads it.
[ -s "$root/etc/hosts" ] || printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n' >"$root/etc/hosts"
mkdir -p "$(dirname "$wrapper")"
cp "$(dirname "$0")/apptainer-wrapper" "$wrapper"
log "apptainer: $("$wrapper" --version)"
