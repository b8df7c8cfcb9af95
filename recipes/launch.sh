#!/usr/bin/env bash
# Run "speechtext <args>" (training) on the recipe's compute, chosen in cmd.sh. No launcher or scheduler of
# our own: one process, torchrun, or Slurm.
#   launch.sh --backend local --ngpu N -- train ...     N <= 1: one process; N > 1: torchrun --standalone (DDP)
#   launch.sh --backend slurm --ngpu N --nodes K --job-dir exp/x -- train ...
#       writes exp/x/train.sbatch and submits it with sbatch --wait: K nodes, one task per node running
#       torchrun over N processes (c10d rendezvous on the first node; WORLD_SIZE/RANK/LOCAL_RANK come from
#       torchrun, the node list from SLURM_JOB_NODELIST). Slurm's warning signal (--signal=B:USR1@120) is
#       passed on as SIGTERM to the job's steps: torchrun hands it to its workers, which finish the step,
#       write last.pt and exit 75; the job then requeues itself and the requeued job resumes
#       (--resume-if-present). torchrun allows its workers 30 s for that (its shutdown timeout).
#       $cpus_per_node (cmd.sh) gives sbatch and srun --cpus-per-task; $slurm_opts adds sbatch options:
#       partition, time limit, account.
set -euo pipefail
backend=local; ngpu=0; nodes=1; job_dir=exp; slurm_opts=${slurm_opts:-}; cpus=${cpus_per_node:-}
nproc=${nproc_per_node:-}  # processes per node; default: one per GPU (CPU-only DDP: set nproc_per_node)
while [ $# -gt 0 ] && [ "$1" != -- ]; do
  case $1 in
    --backend|--ngpu|--nodes|--job-dir|--slurm-opts|--cpus|--nproc) v=${1#--}; printf -v "${v//-/_}" '%s' "$2"; shift 2 ;;
    *) echo "$0: unknown option $1" >&2; exit 1 ;;
  esac
done
[ "${1:-}" = -- ] && shift
[ -n "$nproc" ] || nproc=$(( ngpu > 1 ? ngpu : 1 ))
case $backend in
  local)
    if [ "$nodes" -gt 1 ]; then echo "$0: --nodes $nodes needs a cluster backend (--backend slurm)" >&2; exit 1; fi
    if [ "$nproc" -gt 1 ]; then exec torchrun --standalone --nproc_per_node="$nproc" -m speechtext.cli "$@"; fi
    exec speechtext "$@" ;;
  slurm) ;;
  *) echo "$0: unknown backend '$backend' (local or slurm; set in cmd.sh)" >&2; exit 1 ;;
esac

[ "$ngpu" -gt 0 ] || [ -n "${nproc_per_node:-}" ] ||
  echo "$0: no GPUs asked for (ngpu=0, as detected on this host): one CPU process per node; set --ngpu" >&2
mkdir -p "$job_dir"
script=$job_dir/train.sbatch
{
  echo "#!/usr/bin/env bash"
  echo "#SBATCH --job-name=speechtext-$(basename "$job_dir") --nodes=$nodes --ntasks-per-node=1"
  echo "#SBATCH --requeue --signal=B:USR1@120 --open-mode=append --output=$job_dir/slurm-%j.out"
  [ "$ngpu" -gt 0 ] && echo "#SBATCH --gpus-per-node=$ngpu"
  [ -n "$cpus" ] && echo "#SBATCH --cpus-per-task=$cpus"
  echo "cd $(printf %q "$PWD")"
  echo "export PATH=$(printf %q "$PATH") PYTHONPATH=$(printf %q "${PYTHONPATH:-}") PYTHONUNBUFFERED=1"
  echo "command=($(printf '%q ' "$@"))"
  echo "nproc=$nproc cpus=$cpus"
  cat <<'BODY'
preempted=0
# Slurm's warning (USR1 to this shell) or its preemption (TERM): pass SIGTERM to the steps, let them stop
forward() { preempted=1; scancel --signal=TERM "$SLURM_JOB_ID"; }
trap forward USR1 TERM
head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
port=$((20000 + SLURM_JOB_ID % 20000))  # per job: two jobs whose first node is one machine must not collide
echo "job $SLURM_JOB_ID (restart ${SLURM_RESTART_COUNT:-0}) on $SLURM_JOB_NODELIST: $nproc process(es) per node"
srun --kill-on-bad-exit=1 ${cpus:+--cpus-per-task=$cpus} torchrun --nnodes="$SLURM_JOB_NUM_NODES" --nproc_per_node="$nproc" \
  --rdzv_backend=c10d --rdzv_endpoint="$head:$port" --rdzv_id="$SLURM_JOB_ID" -m speechtext.cli "${command[@]}" &
step=$!
status=0
while kill -0 "$step" 2>/dev/null; do wait "$step" && status=0 || status=$?; done  # a trapped signal ends wait early
if [ "$preempted" = 1 ] && [ "$status" != 0 ]; then  # a run that finished before the signal is done
  echo "preempted: requeueing job $SLURM_JOB_ID (it resumes from last.pt)"
  # refused where Slurm requeues by itself (PreemptMode=REQUEUE) or the job is being cancelled
  scontrol requeue "$SLURM_JOB_ID" || echo "scontrol requeue refused; resubmit to resume from last.pt"
  exit 0
fi
exit "$status"
BODY
} > "$script"
echo "submitting $script (sbatch --wait $slurm_opts)" >&2
# shellcheck disable=SC2086
sbatch --wait $slurm_opts "$script"
