#!/usr/bin/env bash
# One-node throwaway Slurm cluster (munged + slurmctld + slurmd) for testing
# sbatch/srun/requeue/signal handling on a single machine, e.g. in CI.
#
#   bash tools/slurm_cluster.sh install      # apt packages, needs root
#   bash tools/slurm_cluster.sh start DIR    # DIR: absolute path, created
#   export SLURM_CONF=DIR/slurm.conf         # printed by start; clients need it
#   bash tools/slurm_cluster.sh stop DIR     # idempotent
#
# Everything (config, munge key+socket, state, spool, logs, pids) lives in DIR,
# so /etc/slurm is never touched. Env overrides: SLURM_CTLD_PORT, SLURMD_PORT
# (defaults 6817/6818; change them to run two clusters side by side).
set -euo pipefail

die() { echo "slurm_cluster: ERROR: $*" >&2; exit 1; }

# Failed start: show the daemons' logs, and leave nothing half-running.
start_failed() {
    local dir=$1 f
    shift
    for f in "$dir"/log/*.log; do
        [[ -f $f ]] && { echo "---- tail $f" >&2; tail -n 25 "$f" >&2; }
    done
    cmd_stop "$dir" >/dev/null 2>&1 || true
    die "$@"
}

cmd_install() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
        && command -v sbatch >/dev/null && command -v munged >/dev/null; then
        echo "slurm_cluster: slurm and munge already installed"; return
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # The Debian postinst tries to start services; with no init that is just
    # refused (harmless), we start our own daemons anyway.
    apt-get install -y -q --no-install-recommends \
        slurmctld slurmd slurm-client munge
}

# Pid of a daemon that is still alive, from its pid file (empty otherwise).
# A zombie counts as dead: in containers pid 1 may reap exited daemons late.
live_pid() {
    local pid
    pid=$(cat "$1" 2>/dev/null || true)
    [[ -n $pid ]] && [[ $(ps -o stat= -p "$pid" 2>/dev/null) == [^Z]* ]] && echo "$pid"
    return 0
}

write_conf() {
    local dir=$1 node cpus
    node=$(hostname -s)
    cpus=$(nproc)
    # SlurmctldHost/NodeAddr pinned to loopback: the hostname need not resolve
    # to anything reachable in a sandbox.
    cat > "$dir/slurm.conf" <<EOF
ClusterName=local
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=${SLURM_CTLD_PORT:-6817}
SlurmdPort=${SLURMD_PORT:-6818}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# socket: our munged listens in DIR, not /run/munge (daemons+clients read it).
# cred_expire: a requeued job is held (Reason=BeginTime) for cred_expire+1 s,
# default 120; keep it short so requeue tests restart quickly. It is also the
# step-credential lifetime, so a step launch slower than this would fail.
AuthInfo=socket=$dir/munge/munge.socket.2,cred_expire=${SLURM_CRED_EXPIRE:-5}
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups: sandboxes/containers rarely give a usable cgroup hierarchy.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/log/jobcomp.txt
MpiDefault=none
MailProg=/bin/true
SchedulerType=sched/backfill
# Default passes run every 60 s (main) / 30 s (backfill): a job whose
# BeginTime just passed would wait that long for the next pass.
SchedulerParameters=sched_interval=2,bf_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
# A node that went DOWN (e.g. slurmd restarted) comes back by itself.
ReturnToService=2
JobRequeue=1
# Finished jobs stay visible to 'scontrol show job' for 5 minutes.
MinJobAge=300
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
# Trust the CPU count below even if slurmd detects a different topology.
SlurmdParameters=config_overrides
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus Sockets=1 CoresPerSocket=$cpus ThreadsPerCore=1 State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
}

cmd_start() {
    local dir=$1 i d state
    [[ $dir == /* ]] || die "DIR must be an absolute path: $dir"
    command -v slurmctld >/dev/null || die "slurm not installed (run: $0 install)"
    [[ -n $(live_pid "$dir/run/slurmctld.pid") ]] && die "already running in $dir (stop it first)"
    # munged refuses group/world-writable dirs on the key, socket and log
    # paths; the socket dir needs o+x so non-root clients can reach it.
    mkdir -p "$dir"/{munge,state,spool,log,run}
    chmod 0711 "$dir/munge"
    chmod 0700 "$dir/log" "$dir/run"
    chmod 0755 "$dir"  # e.g. a mktemp -d (0700) would hide the socket from users
    write_conf "$dir"
    export SLURM_CONF=$dir/slurm.conf

    [[ -f $dir/munge/munge.key ]] || {
        dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
        chmod 0400 "$dir/munge/munge.key"
    }
    # --force: start even over a stale socket left by an unclean stop.
    munged --socket="$dir/munge/munge.socket.2" --key-file="$dir/munge/munge.key" \
        --pid-file="$dir/run/munged.pid" --log-file="$dir/log/munged.log" \
        --seed-file="$dir/munge/munged.seed" --force \
        || start_failed "$dir" "munged failed to start"

    # -c: discard jobs from a previous run of this DIR; each start is fresh.
    slurmctld -c -f "$SLURM_CONF" || start_failed "$dir" "slurmctld failed to start"
    slurmd -f "$SLURM_CONF" || start_failed "$dir" "slurmd failed to start"

    for ((i = 0; i < 60; i++)); do
        state=$(sinfo -h -N -o %t 2>/dev/null || true)
        [[ $state == idle ]] && break
        # The daemons fork before parsing everything; catch a dead one early.
        if ((i >= 3)); then
            for d in munged slurmctld slurmd; do
                [[ -n $(live_pid "$dir/run/$d.pid") ]] \
                    || start_failed "$dir" "$d is not running"
            done
        fi
        sleep 1
    done
    if [[ $state != idle ]]; then
        sinfo -N -l >&2 || true
        start_failed "$dir" "node did not become idle within 60 s (state: '${state:-none}')"
    fi
    sinfo -N -o '%N %t %c'
    echo "slurm_cluster: up. Use it with:"
    echo "export SLURM_CONF=$SLURM_CONF"
}

stop_pidfile() {  # TERM, then KILL after 10 s
    local pid i
    pid=$(live_pid "$1")
    [[ -z $pid ]] && return 0
    kill "$pid"
    for ((i = 0; i < 20; i++)); do
        [[ -z $(live_pid "$1") ]] && return 0
        sleep 0.5
    done
    kill -9 "$pid" 2>/dev/null || true
}

cmd_stop() {
    local dir=$1 i
    [[ $dir == /* ]] || die "DIR must be an absolute path: $dir"
    export SLURM_CONF=$dir/slurm.conf
    # Cancel jobs first: slurmstepd processes outlive slurmd and would linger.
    if [[ -n $(live_pid "$dir/run/slurmctld.pid") ]]; then
        squeue -h -o %A 2>/dev/null | xargs -r scancel --quiet || true
        for ((i = 0; i < 20; i++)); do
            [[ -z $(squeue -h -t R,CG -o %i 2>/dev/null) ]] && break
            sleep 0.5
        done
    fi
    stop_pidfile "$dir/run/slurmd.pid"
    stop_pidfile "$dir/run/slurmctld.pid"
    stop_pidfile "$dir/run/munged.pid"
    echo "slurm_cluster: stopped ($dir)"
}

case "${1:-}" in
    install) cmd_install ;;
    start) [[ $# -eq 2 ]] || die "usage: $0 start DIR"; cmd_start "$2" ;;
    stop) [[ $# -eq 2 ]] || die "usage: $0 stop DIR"; cmd_stop "$2" ;;
    *) die "usage: $0 install | start DIR | stop DIR" ;;
esac
