"""Run many `speechtext` command lines in this one process, so that torch and transformers are
imported once instead of once per command (~5 s a process on 2 cores: most of a small set's decoding
time). Stage 4 of recipes/asr.sh (every test set x decoder) and stage 8 of recipes/export.sh (the ONNX
exports and the decodings through each system) run their commands through it.

Usage: speechtext_jobs.py [--stage N] [--wallclock] JOBS, where each line of JOBS is
`OUT COMMAND [args]` (shell words, as after `speechtext`). The command's stdout goes to OUT, which is
written whole or not at all; an OUT of `-` leaves stdout as it is. With --wallclock, the start and end
of each job with an OUT (seconds since the epoch) go to `wallclock` beside OUT, before OUT is written:
the time of that command alone, without the process's start-up. The first command that fails stops
the rest with its exit status, as separate processes under `set -e` did.
"""
import argparse
import contextlib
import os
import shlex
import sys
import time

import click

from speechtext.cli import cli


def run_job(out: str, args: list[str], wallclock: bool) -> int:
    """Run one `speechtext` command line with its stdout into ``out`` (``-``: left alone); its exit status."""
    tmp = out + ".tmp"
    status, start = 0, time.time()
    with contextlib.ExitStack() as stack:
        if out != "-":
            stack.enter_context(contextlib.redirect_stdout(stack.enter_context(open(tmp, "w", encoding="utf-8"))))
        try:
            cli.main(args=args, prog_name="speechtext", standalone_mode=False)
        except SystemExit as exc:  # transcribe exits 1 when an input failed
            status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except click.ClickException as exc:
            exc.show()
            status = exc.exit_code
    if out == "-":
        return status
    if status:
        os.remove(tmp)
        return status
    if wallclock:
        with open(os.path.join(os.path.dirname(out), "wallclock"), "w", encoding="utf-8") as handle:
            handle.write(f"{start} {time.time()}\n")
    os.replace(tmp, out)
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", default="?", help="The recipe stage, for the log lines.")
    parser.add_argument("--wallclock", action="store_true", help="Write each job's start and end beside its OUT.")
    parser.add_argument("jobs")
    opts = parser.parse_args()
    with open(opts.jobs, encoding="utf-8") as handle:
        jobs = [shlex.split(line) for line in handle if line.strip()]
    for out, *args in jobs:
        where = "" if out == "-" else f" > {out}"
        print(f"{time.strftime('%H:%M:%S')} [stage {opts.stage}] speechtext {shlex.join(args)}{where}", file=sys.stderr, flush=True)
        status = run_job(out, args, opts.wallclock)
        if status:
            print(f"speechtext_jobs.py: the command above failed (exit {status}){'' if out == '-' else f'; {out} not written'}",
                  file=sys.stderr)
            sys.exit(status)


if __name__ == "__main__":
    main()
