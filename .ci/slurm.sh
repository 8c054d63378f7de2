# Sourced by .ci/run: a throwaway one-node SLURM cluster on loopback for the SLURM test.
# slurm_start installs Debian's slurm-wlm and munge, generates a munge key, writes a minimal
# slurm.conf (this machine's real CPUs and memory, all state in one temporary folder, its own
# ports), starts munged, slurmctld and slurmd, waits for the node to be idle and exports
# SLURM_CONF and ABLATE_TEST_SLURM=1. If any step fails it prints why and returns 1 without
# exporting ABLATE_TEST_SLURM, so the SLURM test is skipped and the other tests still run.
# slurm_stop stops the daemons and deletes everything.

slurm_start() {
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    if ! { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq slurm-wlm munge >/dev/null; }; then
        command -v slurmctld >/dev/null && command -v munged >/dev/null || { slurm_skip "cannot install slurm-wlm and munge"; return 1; }
        echo "warning: apt-get failed; using the SLURM already installed" >&2
    fi
    SLURM_DIR=$(mktemp -d /tmp/ablate-ci-slurm.XXXXXX)
    mkdir -p "$SLURM_DIR/state" "$SLURM_DIR/spool" "$SLURM_DIR/munge"
    local dir=$SLURM_DIR user
    user=$(id -un)
    # munge: its own key and socket, so that nothing of the machine's own setup is touched.
    dd if=/dev/urandom of="$dir/munge/munge.key" bs=1 count=1024 status=none
    chmod 700 "$dir/munge" && chmod 400 "$dir/munge/munge.key"
    munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/socket" \
        --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/seed" ||
        { slurm_skip "munged did not start (see $dir/munge/munged.log)"; return 1; }
    local node ports
    # This machine's real CPUs, sockets, cores and memory, as slurmd itself detects them.
    node=$(slurmd -C | head -n 1 | sed 's/^NodeName=[^ ]* //')
    ports=$(python3 -c 'import socket
for _ in range(2):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()' | tr '\n' ' ')
    read -r ctld_port slurmd_port <<<"$ports"
    cat >"$dir/slurm.conf" <<EOF
ClusterName=ablate-ci
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=$user
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
KillWait=30
NodeName=ablate-ci NodeHostname=localhost NodeAddr=127.0.0.1 $node State=UNKNOWN
PartitionName=ci Nodes=ALL Default=YES MaxTime=INFINITE State=UP DefMemPerCPU=1024
EOF
    export SLURM_CONF=$dir/slurm.conf
    slurmctld -i || { slurm_skip "slurmctld did not start: $(tail -n 3 "$dir/slurmctld.log" 2>/dev/null)"; return 1; }
    slurmd -N ablate-ci || { slurm_skip "slurmd did not start: $(tail -n 3 "$dir/slurmd.log" 2>/dev/null)"; return 1; }
    local state=""
    for _ in $(seq 60); do
        state=$(sinfo -h -N -o %T 2>/dev/null || true)
        [ "$state" = idle ] && break
        sleep 1
    done
    if [ "$state" != idle ]; then
        slurm_skip "the node is '${state:-unknown}', not idle, after 60 s: $(tail -n 3 "$dir/slurmd.log" 2>/dev/null)"
        return 1
    fi
    export ABLATE_TEST_SLURM=1
    echo "+ SLURM $(sinfo -V | awk '{print $2}') one-node cluster on 127.0.0.1:$ctld_port ($node; state in $dir)"
}

slurm_skip() {
    echo "warning: no SLURM cluster, the SLURM test will be skipped: $1" >&2
    export ABLATE_TEST_SLURM_SKIPPED="$1"
}

slurm_stop() {
    [ -n "${SLURM_DIR:-}" ] || return 0
    local pidfile
    for pidfile in "$SLURM_DIR/slurmd.pid" "$SLURM_DIR/slurmctld.pid" "$SLURM_DIR/munge/munged.pid"; do
        [ -s "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null
    done
    sleep 1
    rm -rf "$SLURM_DIR"
    SLURM_DIR=
}
