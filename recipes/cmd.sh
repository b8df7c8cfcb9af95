# How a recipe's training runs (sourced by egs/*/run.sh; replace the egs link with your own file to change
# it for one corpus, or pass --backend/--ngpu/--nodes to run.sh):
#   backend=local  this machine: one process, or torchrun --standalone over $ngpu GPUs (DDP)
#   backend=slurm  sbatch + srun torchrun over $nodes nodes x $ngpu GPUs, requeued on preemption
#                  (recipes/launch.sh); cpus_per_node: CPUs for all of a node's processes (sbatch and srun
#                  --cpus-per-task); slurm_opts adds sbatch options, e.g. "--partition=gpu --time=24:00:00"
export backend=${backend:-local}
export ngpu=${ngpu:-$(python3 -c 'import torch; print(torch.cuda.device_count())' 2>/dev/null || echo 0)}
export nodes=${nodes:-1}
export slurm_opts=${slurm_opts:-}
export cpus_per_node=${cpus_per_node:-}
export nproc_per_node=${nproc_per_node:-}  # processes per node when it is not one per GPU (CPU DDP over gloo)
