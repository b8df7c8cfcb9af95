# The two commands a newcomer needs (each installs everything first):
#   make recipe   trains and evaluates the CPU recipe egs/synth_commands (35-60 minutes on 2 cores)
#   make test     runs the test suite but its slow tests (what CI runs); make test-all runs those too
.PHONY: setup recipe test test-all test-fast bench
setup:
	bash tools/setup.sh

recipe: setup
	cd egs/synth_commands && bash run.sh

test: setup
	.venv/bin/python -m pytest -q -m "not slow" --durations=15

# + the smoke recipes, every public-corpus recipe on a miniature corpus, two-process DDP, the Slurm
# requeue (where Slurm is installed: bash tools/slurm_cluster.sh install), sharded loading, a synthesis resume
test-all: setup
	.venv/bin/python -m pytest -q --durations=15

test-fast: setup
	.venv/bin/python -m pytest -q -m "not slow and not recipe"

bench: setup
	.venv/bin/python benchmarks/transcribe_vs_hf.py
