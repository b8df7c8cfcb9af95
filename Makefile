# The two commands a newcomer needs (each installs everything first):
#   make recipe   trains and evaluates the CPU recipe egs/synth_commands (about 35 minutes on 2 cores)
#   make test     runs the test suite
.PHONY: setup recipe test test-fast bench
setup:
	bash tools/setup.sh

recipe: setup
	cd egs/synth_commands && bash run.sh

test: setup
	.venv/bin/python -m pytest -q

test-fast: setup
	.venv/bin/python -m pytest -q -m "not slow and not recipe"

bench: setup
	.venv/bin/python benchmarks/transcribe_vs_hf.py
