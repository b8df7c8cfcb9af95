"""recipes/speechtext_jobs.py: many `speechtext` command lines in one process (stages 4 and 8)."""
import os
import subprocess
import sys

JOBS = os.path.join(os.path.dirname(__file__), "..", "recipes", "speechtext_jobs.py")


def test_each_output_is_written_whole_and_the_first_failure_stops_the_rest(tmp_path):
    (tmp_path / "ref").write_text("u1 turn on the lights\nu2 stop\n")
    (tmp_path / "hyp").write_text("u1 turn on the light\nu2 stop\n")
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
    jobs = tmp_path / "jobs.txt"
    jobs.write_text(f"{tmp_path}/a/out.txt score {tmp_path}/ref {tmp_path}/hyp\n"
                    f"{tmp_path}/b/out.txt score {tmp_path}/ref {tmp_path}/missing\n"
                    f"{tmp_path}/c/out.txt score {tmp_path}/ref {tmp_path}/hyp\n")
    run = subprocess.run([sys.executable, JOBS, "--stage", "8", "--wallclock", str(jobs)], capture_output=True, text=True)
    assert run.returncode == 2, run.stderr  # click's usage error for a missing file, as `speechtext score` exits
    assert (tmp_path / "a" / "out.txt").read_text().startswith("%WER 20.00")
    start, end = map(float, (tmp_path / "a" / "wallclock").read_text().split())
    assert 0 <= end - start < 60
    assert not any((tmp_path / "b").iterdir()), "a failed job left files"
    assert not (tmp_path / "c" / "out.txt").exists(), "the job after the failure ran"
    assert "[stage 8] speechtext score" in run.stderr and "b/out.txt not written" in run.stderr
