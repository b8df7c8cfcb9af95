"""Stage 4 of recipes/asr.sh: every (test set, decoder) decoding is a `speechtext transcribe` command
line, and all of them run in this one process, so that torch and transformers are imported once
instead of once per decoding (~5 s a process on 2 cores: most of a small set's decoding time).

Usage: decode_jobs.py JOBS, where each line of JOBS is `HYP_FILE transcribe MODEL INPUT [options]`
(shell words). The command's output goes to HYP_FILE, which is written whole or not at all; the first
command that fails stops the rest with its exit status, as separate processes under `set -e` did.
"""
import contextlib
import os
import shlex
import sys
import time

import click

from speechtext.cli import cli


def run_job(hyp: str, args: list[str]) -> int:
    """Run one `speechtext` command line with its stdout into ``hyp``; its exit status."""
    tmp = hyp + ".tmp"
    status = 0
    with open(tmp, "w", encoding="utf-8") as out, contextlib.redirect_stdout(out):
        try:
            cli.main(args=args, prog_name="speechtext", standalone_mode=False)
        except SystemExit as exc:  # transcribe exits 1 when an input failed
            status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except click.ClickException as exc:
            exc.show()
            status = exc.exit_code
    if status == 0:
        os.replace(tmp, hyp)
    return status


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as handle:
        jobs = [shlex.split(line) for line in handle if line.strip()]
    for hyp, *args in jobs:
        print(f"{time.strftime('%H:%M:%S')} [stage 4] speechtext {shlex.join(args)} > {hyp}", file=sys.stderr, flush=True)
        status = run_job(hyp, args)
        if status:
            print(f"decode_jobs.py: the command above failed (exit {status}); {hyp} not written", file=sys.stderr)
            sys.exit(status)


if __name__ == "__main__":
    main()
