#!/usr/bin/env bash
# A real two-node Slurm 22.05 cluster on this one machine, for tests, CI and benchmarks.
# No systemd, run as root. Everything lives under $TY_SLURM_DIR (default /run/trainyard-slurm):
# its own slurm.conf (clients find it through SLURM_CONF), its own munged (own key and socket),
# its own ports, so it never reads or clobbers /etc/slurm, /etc/munge or a real cluster's daemons.
#
#   - Two nodes, n1 and n2, are two slurmd daemons on this host in Slurm's multiple-slurmd mode
#     (`slurmd -N <node>`, one Port= per node): Debian's build has it (checked with 22.05.8).
#     Both nodes share this host's loopback address, so services on 127.0.0.1 (a Trainyard
#     server, s3rver) are reachable from jobs. docs/slurm.md says why this mode and not network
#     namespaces.
#   - Partitions over both nodes, every job gets whole nodes (OverSubscribe=EXCLUSIVE, like an
#     instance): `spot` (PriorityTier=1, PreemptMode=CANCEL, GraceTime=$TY_SLURM_GRACE s: the
#     interruption notice) and `ondemand` (PriorityTier=10, the default); preempt/partition_prio.
#   - Scheduling every second, so tests are quick.
#
# usage: scripts/slurm.sh up|down|status|env
#   up      install the packages if missing, start whatever is not running (idempotent: a
#           killed slurmctld is restarted and recovers its jobs from its state), wait until both
#           nodes are idle or allocated
#   down    stop every daemon and job of this cluster and remove $TY_SLURM_DIR (leaves nothing)
#   status  print the daemons and `sinfo`; exit 0 only if the cluster is up
#   env     print `export SLURM_CONF=...` (eval "$(scripts/slurm.sh env)" before sbatch/squeue)
# env: TY_SLURM_DIR, TY_SLURM_PORT (slurmctld; nodes use the next two ports; default 16817),
#      TY_SLURM_GRACE (spot GraceTime, seconds; default 10), TY_SLURM_CPUS (CPUs each node
#      declares, default nproc; more than the machine has through
#      SlurmdParameters=config_overrides, for benchmarks of many sleeping one-CPU jobs:
#      bench/launcher_cost.py; read by a fresh `up`)
set -euo pipefail

DIR="${TY_SLURM_DIR:-/run/trainyard-slurm}"
PORT="${TY_SLURM_PORT:-16817}"
GRACE="${TY_SLURM_GRACE:-10}"
CONF="$DIR/etc/slurm.conf"
MUNGE_SOCKET="$DIR/munge/munge.socket"
NODES=(n1 n2)
export SLURM_CONF="$CONF"

die() { echo "slurm.sh: error: $*" >&2; exit 1; }
log() { echo "slurm.sh: $*" >&2; }

# The pid in a pid file if that process is alive and is the expected program.
pid_of() {
  local file="$1" name="$2" pid
  [[ -s "$file" ]] || return 1
  read -r pid <"$file" || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$name" ]] || return 1
  # A killed daemon stays a zombie until it is reaped: that is not running.
  [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]] || return 1
  echo "$pid"
}

install_packages() {
  local missing=() p
  for p in slurmctld slurmd slurm-client munge; do
    dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
  done
  (( ${#missing[@]} == 0 )) && return 0
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
}

write_config() {
  local host cpus mem_kb mem_mb overrides=""
  host="$(hostname -s)"
  cpus="$(nproc)"
  if [[ -n "${TY_SLURM_CPUS:-}" ]]; then
    [[ "$TY_SLURM_CPUS" =~ ^[1-9][0-9]{0,3}$ ]] || die "TY_SLURM_CPUS must be 1 to 9999"
    cpus="$TY_SLURM_CPUS"
    overrides="SlurmdParameters=config_overrides"
  fi
  mem_kb="$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)"
  # Both slurmd report the whole machine; each node claims half of its memory.
  mem_mb=$(( mem_kb / 1024 / 2 ))
  install -d -m 0755 "$DIR/etc" "$DIR/log" "$DIR/run" "$DIR/ctld"
  install -d -m 0755 "$DIR/spool"
  local n
  for n in "${NODES[@]}"; do install -d -m 0755 "$DIR/spool/$n"; done
  cat >"$CONF.tmp" <<CONF
# Written by scripts/slurm.sh: a two-node test cluster on one host (multiple-slurmd mode).
ClusterName=trainyard
SlurmctldHost=${host}(127.0.0.1)
SlurmctldPort=${PORT}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=${MUNGE_SOCKET},cred_expire=10
StateSaveLocation=${DIR}/ctld
SlurmdSpoolDir=${DIR}/spool/%n
SlurmctldPidFile=${DIR}/run/slurmctld.pid
SlurmdPidFile=${DIR}/run/slurmd-%n.pid
SlurmctldLogFile=${DIR}/log/slurmctld.log
SlurmdLogFile=${DIR}/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1,bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
${overrides}
MessageTimeout=5
SlurmdTimeout=30
KillWait=5
MinJobAge=300
JobRequeue=0
PreemptType=preempt/partition_prio
PreemptMode=CANCEL
PreemptExemptTime=0
NodeName=n1 NodeHostname=${host} NodeAddr=127.0.0.1 Port=$((PORT + 1)) CPUs=${cpus} RealMemory=${mem_mb} State=UNKNOWN
NodeName=n2 NodeHostname=${host} NodeAddr=127.0.0.1 Port=$((PORT + 2)) CPUs=${cpus} RealMemory=${mem_mb} State=UNKNOWN
PartitionName=ondemand Nodes=n1,n2 Default=YES MaxTime=INFINITE State=UP OverSubscribe=EXCLUSIVE PriorityTier=10 PreemptMode=OFF
PartitionName=spot     Nodes=n1,n2 Default=NO  MaxTime=INFINITE State=UP OverSubscribe=EXCLUSIVE PriorityTier=1  PreemptMode=CANCEL GraceTime=${GRACE}
CONF
  mv "$CONF.tmp" "$CONF"
}

start_munge() {
  pid_of "$DIR/munge/munged.pid" munged >/dev/null && return 0
  install -d -o munge -g munge -m 0755 "$DIR/munge"
  if [[ ! -s "$DIR/munge/munge.key" ]]; then
    dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
    chown munge:munge "$DIR/munge/munge.key"
    chmod 0400 "$DIR/munge/munge.key"
  fi
  runuser -u munge -- /usr/sbin/munged --socket="$MUNGE_SOCKET" --key-file="$DIR/munge/munge.key" \
    --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/munge/munged.log" \
    --seed-file="$DIR/munge/munged.seed" \
    || die "munged did not start (see $DIR/munge/munged.log)"
}

start_slurm() {
  if ! pid_of "$DIR/run/slurmctld.pid" slurmctld >/dev/null; then
    # A fresh state dir starts empty; an existing one is recovered (jobs survive a restart).
    /usr/sbin/slurmctld -f "$CONF" || die "slurmctld did not start (see $DIR/log/slurmctld.log)"
  fi
  local n
  for n in "${NODES[@]}"; do
    pid_of "$DIR/run/slurmd-$n.pid" slurmd >/dev/null && continue
    /usr/sbin/slurmd -f "$CONF" -N "$n" || die "slurmd $n did not start (see $DIR/log/slurmd-$n.log)"
  done
}

# Both nodes usable (idle, or running jobs) within 30 s.
wait_ready() {
  local i states
  for i in $(seq 1 60); do
    states="$(sinfo -h -N -p ondemand -o '%N %t' 2>/dev/null | sort -u || true)"
    if [[ "$(grep -cE '^n[12] (idle|alloc|mix|comp)$' <<<"$states")" == 2 ]]; then
      return 0
    fi
    sleep 0.5
  done
  die "nodes not ready after 30 s: ${states:-no answer from slurmctld} (logs in $DIR/log)"
}

up() {
  [[ "$(id -u)" -eq 0 ]] || die "must run as root"
  install_packages
  mkdir -p "$DIR"
  write_config
  start_munge
  start_slurm
  wait_ready
  # Nodes a previous run left DOWN/DRAIN (e.g. after slurmd was killed) come back.
  scontrol update nodename=n1,n2 state=resume >/dev/null 2>&1 || true
  log "up: $(sinfo -h -o '%P %D %t' | tr '\n' ' ') (SLURM_CONF=$CONF)"
}

# Sends SIGTERM, then SIGKILL after 5 s, to the process in a pid file.
stop_pidfile() {
  local file="$1" name="$2" pid i
  pid="$(pid_of "$file" "$name")" || return 0
  kill "$pid" 2>/dev/null || true
  for i in $(seq 1 50); do
    [[ -d "/proc/$pid" ]] || return 0
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
}

# This cluster's slurmstepd daemons and job tasks: they carry our SLURM_CONF in their
# environment (inherited from our slurmd), tasks also a SLURM_JOB_ID. A client that merely uses
# the cluster (a test runner, a Trainyard server) has no SLURM_JOB_ID and is left alone.
our_processes() {
  local f p
  # One grep over every environment (NUL-separated), then a closer look at the few matches.
  while IFS= read -r -d '' f; do
    p="${f#/proc/}"
    p="${p%/environ}"
    [[ "$p" == "$$" ]] && continue
    if [[ "$(cat 2>/dev/null "/proc/$p/comm")" == slurmstepd ]] \
      || grep -qz '^SLURM_JOB_ID=' 2>/dev/null "/proc/$p/environ"; then
      echo "$p"
    fi
  done < <(grep -lzxF --null "SLURM_CONF=$CONF" /proc/[0-9]*/environ 2>/dev/null || true)
}

down() {
  [[ "$(id -u)" -eq 0 ]] || die "must run as root"
  if [[ ! -d "$DIR" ]]; then
    log "down: nothing to do"
    return 0
  fi
  if pid_of "$DIR/run/slurmctld.pid" slurmctld >/dev/null; then
    local jobs
    jobs="$(squeue -h -o %A 2>/dev/null | tr '\n' ' ' || true)"
    # shellcheck disable=SC2086
    [[ -n "${jobs// /}" ]] && { scancel --signal=KILL --full $jobs >/dev/null 2>&1 || true; }
  fi
  local n
  for n in "${NODES[@]}"; do stop_pidfile "$DIR/run/slurmd-$n.pid" slurmd; done
  stop_pidfile "$DIR/run/slurmctld.pid" slurmctld
  # Job steps and tasks outlive their slurmd; none of them may stay.
  local pids
  pids="$(our_processes | tr '\n' ' ')"
  if [[ -n "${pids// /}" ]]; then
    # shellcheck disable=SC2086
    kill -9 $pids 2>/dev/null || true
  fi
  stop_pidfile "$DIR/munge/munged.pid" munged
  rm -rf "$DIR"
  log "down: stopped and removed $DIR"
}

status() {
  local ok=0 n
  if [[ ! -d "$DIR" ]]; then
    echo "slurm.sh: down (no $DIR)"
    return 1
  fi
  pid_of "$DIR/munge/munged.pid" munged >/dev/null && echo "munged: running" \
    || { echo "munged: not running"; ok=1; }
  pid_of "$DIR/run/slurmctld.pid" slurmctld >/dev/null && echo "slurmctld: running" \
    || { echo "slurmctld: not running"; ok=1; }
  for n in "${NODES[@]}"; do
    pid_of "$DIR/run/slurmd-$n.pid" slurmd >/dev/null && echo "slurmd $n: running" \
      || { echo "slurmd $n: not running"; ok=1; }
  done
  echo "SLURM_CONF=$CONF"
  (( ok == 0 )) && sinfo
  return "$ok"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  -h|--help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) echo "usage: scripts/slurm.sh up|down|status|env" >&2; exit 2 ;;
esac
