#!/usr/bin/env bash
# A real single-node SLURM cluster on localhost for the SLURM tests: munge + slurmctld + slurmd from
# Debian's packages (slurm-wlm 22.05), started by hand as root without systemd and stopped by PID file.
#
#   tests/slurm/cluster.sh install   # apt-get install slurm-wlm munge (once per machine)
#   tests/slurm/cluster.sh start     # write the config under $EMOGRID_SLURM_STATE, start the daemons
#   tests/slurm/cluster.sh stop      # stop them (the state directory is left for post-mortems)
#   tests/slurm/cluster.sh status
#
# No cgroups here: ProctrackType=proctrack/linuxproc and TaskPlugin=task/none. No slurmdbd, so
# `sacct` does not work: the test profile polls with squeue, and MinJobAge=300 keeps finished jobs
# visible to squeue long enough (the plugin wants MinJobAge >= 3 x its first status delay).
# The node advertises fake GPUs: gres backed by character devices (the major/minor of /dev/null), so
# GPU-requesting jobs are scheduled and get CUDA_VISIBLE_DEVICES, and training must fall back to CPU.
set -euo pipefail

STATE=${EMOGRID_SLURM_STATE:-/tmp/emogrid-slurm}
FAKE_GPUS=${EMOGRID_SLURM_FAKE_GPUS:-2}
CONF_DIR=/etc/slurm
MARK="# Written by tests/slurm/cluster.sh for emogrid's SLURM tests. Not a production configuration."

log() { echo "[slurm-cluster] $*" >&2; }

install() {
    if command -v slurmctld >/dev/null && command -v munged >/dev/null && command -v sbatch >/dev/null; then
        return
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null || log "apt-get update failed; trying the cached package lists"
    apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null
}

start_munge() {
    mkdir -p /etc/munge /var/lib/munge /var/log/munge /run/munge
    if [ ! -s /etc/munge/munge.key ]; then
        if command -v mungekey >/dev/null; then
            mungekey --create --keyfile=/etc/munge/munge.key
        else
            dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
        fi
    fi
    chmod 0400 /etc/munge/munge.key
    if ! munge -n >/dev/null 2>&1; then
        munged --force
    fi
    munge -n | unmunge >/dev/null
}

write_config() {
    local host node_line free_mb real_mb gres_files
    host=$(hostname -s)
    # The node line as slurmd sees this machine (CPUs, sockets, cores, threads), minus UpTime and the
    # RealMemory, which must stay below what is really free or the node is drained.
    node_line=$(slurmd -C | head -n1 | sed -E 's/ RealMemory=[0-9]+//')
    free_mb=$(awk '/MemAvailable/ {print int($2 / 1024)}' /proc/meminfo)
    real_mb=$((free_mb * 8 / 10))
    mkdir -p "$STATE"/{ctld,spool,log,dev} "$CONF_DIR"
    gres_files=""
    for i in $(seq 0 $((FAKE_GPUS - 1))); do
        [ -e "$STATE/dev/fakegpu$i" ] || mknod "$STATE/dev/fakegpu$i" c 1 3
    done
    if [ "$FAKE_GPUS" -gt 0 ]; then
        gres_files="Gres=gpu:$FAKE_GPUS"
        printf '%s\nNodeName=%s Name=gpu File=%s\n' "$MARK" "$host" \
            "$STATE/dev/fakegpu[0-$((FAKE_GPUS - 1))]" >"$CONF_DIR/gres.conf"
    else
        echo "$MARK" >"$CONF_DIR/gres.conf"
    fi
    cat >"$CONF_DIR/slurm.conf" <<CONF
$MARK
ClusterName=emogridtest
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
MinJobAge=300
# A job past its time limit gets SIGTERM, then SIGKILL 30 s later (time to write a checkpoint).
KillWait=30
SlurmctldTimeout=30
SlurmdTimeout=30
$node_line RealMemory=$real_mb $gres_files State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
}

wait_for_node() {
    for _ in $(seq 1 60); do
        if sinfo -h -N -o '%t' 2>/dev/null | grep -Eq '^(idle|mix|alloc)'; then
            return 0
        fi
        sleep 0.5
    done
    log "the node did not become idle:"
    sinfo -N -l >&2 || true
    tail -n 20 "$STATE/log/slurmctld.log" "$STATE/log/slurmd.log" >&2 || true
    return 1
}

start() {
    install
    stop_daemons
    start_munge
    write_config
    # -c: a clean start, no jobs or node states carried over from an earlier test run.
    slurmctld -c
    slurmd
    wait_for_node
    log "up: $(sinfo -h -N -o '%N %c CPUs %m MB %G %t')"
}

stop_pidfile() {
    local file=$1 pid
    [ -s "$file" ] || return 0
    pid=$(cat "$file")
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 1 40); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.25
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$file"
}

stop_daemons() {
    stop_pidfile "$STATE/slurmd.pid"
    stop_pidfile "$STATE/slurmctld.pid"
}

# The config goes with the cluster: with slurm.conf left behind and no controller, every
# `scontrol show config` waits ~9 s for it, and snakemake-executor-plugin-slurm runs that at import,
# i.e. at the start of every snakemake run on the machine, local ones included. Without the file
# it fails at once. Only files this script wrote (first line $MARK) are removed.
remove_config() {
    local file
    for file in "$CONF_DIR/slurm.conf" "$CONF_DIR/gres.conf"; do
        if [ -f "$file" ] && [ "$(head -n1 "$file")" = "$MARK" ]; then
            rm -f "$file"
        fi
    done
}

stop() {
    scancel --user=root >/dev/null 2>&1 || true
    stop_daemons
    remove_config
    log "stopped"
}

case "${1:-}" in
    install) install ;;
    start) start ;;
    stop) stop ;;
    status) sinfo -N -l && squeue ;;
    *)
        echo "usage: $0 install|start|stop|status" >&2
        exit 2
        ;;
esac
