"""One-file model archives (``speechtext pack``): load and CLI use them like the directory, the model
card says what the model is, and extraction refuses crafted, truncated or altered archives."""
import io
import os
import subprocess
import sys
import tarfile

import pytest

import speechtext
from speechtext.archive import ArchiveError, open_archive, pack_model
from speechtext.checkpoint import CheckpointError
from conftest import wavs


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPEECHTEXT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture()
def packed(trained_model, tmp_path, cache):
    with open(os.path.join(os.path.dirname(trained_model), "RESULTS.md"), "w") as handle:
        handle.write("# Results: tiny\n\n| test set | WER % |\n|---|---|\n| test | 12.34 |\n")
    return pack_model(trained_model, str(tmp_path / "tiny.tar.gz"))


def test_archive_loads_like_the_directory(trained_model, packed, speech_dir, cache):
    files = wavs(speech_dir)[:4]
    from_dir = [r.text for r in speechtext.load_model(trained_model).transcribe(files, precision="fp32")]
    from_archive = [r.text for r in speechtext.load_model(packed).transcribe(files, precision="fp32")]
    assert from_dir == from_archive
    speechtext.load_model(packed)  # a second load reuses the unpacked copy
    assert len(os.listdir(cache / "archives")) == 1
    with tarfile.open(packed) as tar:
        names = sorted(m.name for m in tar.getmembers())
    assert names == sorted(f"tiny/{f}" for f in os.listdir(trained_model) + ["SHA256SUMS", "README.md"])


def test_model_card_and_checksums(packed, cache):
    folder = open_archive(packed)
    card = open(os.path.join(folder, "README.md")).read()
    assert "## Training" in card and "train_dir" in card and "train_utterances: 16" in card
    assert "## Config" in card and "preset: tiny" in card
    assert "| test | 12.34 |" in card  # the run's RESULTS.md, found beside the model
    check = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=folder, capture_output=True, text=True)
    assert check.returncode == 0 and check.stdout.count(": OK") == len(os.listdir(folder)) - 1


def test_cli_pack_then_every_verb_takes_the_archive(trained_model, speech_dir, tmp_path, cache):
    env = {**os.environ, "SPEECHTEXT_CACHE": str(cache)}
    cli = [sys.executable, "-m", "speechtext.cli"]
    out = subprocess.run(cli + ["pack", trained_model, "-o", str(tmp_path / "m.tgz")], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    run = subprocess.run(cli + ["transcribe", str(tmp_path / "m.tgz"), *wavs(speech_dir)[:2]], capture_output=True,
                         text=True, env=env)
    assert run.returncode == 0 and len(run.stdout.splitlines()) == 2, run.stderr
    align = subprocess.run(cli + ["align", str(tmp_path / "m.tgz"), speech_dir], capture_output=True, text=True, env=env)
    assert align.returncode == 0 and align.stdout.count("\n") > 16, align.stderr
    bad = subprocess.run(cli + ["pack", trained_model, "-o", str(tmp_path / "m.zip")], capture_output=True, text=True)
    assert bad.returncode == 2 and "m.zip" in bad.stderr


def _rewrite(packed: str, out: str, change) -> str:
    """A copy of ``packed`` with ``change(name, data) -> data`` applied to each member's bytes."""
    with tarfile.open(packed) as src, tarfile.open(out, "w:gz") as dst:
        for member in src.getmembers():
            data = change(member.name, src.extractfile(member).read())
            member.size = len(data)
            dst.addfile(member, io.BytesIO(data))
    return out


def test_tampered_and_truncated_archives_are_refused(packed, tmp_path, cache):
    def flip(name, data):
        return data[:-100] + bytes([data[-100] ^ 1]) + data[-99:] if name.endswith(".safetensors") else data

    tampered = _rewrite(packed, str(tmp_path / "tampered.tar.gz"), flip)
    with pytest.raises(ArchiveError, match="checksum mismatch for model.safetensors"):
        speechtext.load_model(tampered)
    torn = tmp_path / "torn.tar.gz"
    torn.write_bytes(open(packed, "rb").read()[:20000])
    with pytest.raises(ArchiveError, match="torn.tar.gz: cannot read the archive"):
        speechtext.load_model(str(torn))
    unsummed = _rewrite(packed, str(tmp_path / "nosums.tar.gz"), lambda n, d: b"" if n.endswith("SHA256SUMS") else d)
    with pytest.raises(ArchiveError, match="nosums.tar.gz"):
        speechtext.load_model(unsummed)
    assert os.listdir(cache / "archives") == []  # nothing half-unpacked kept


def _crafted(path, member: tarfile.TarInfo, data: bytes = b"x") -> str:
    with tarfile.open(path, "w:gz") as tar:
        ok = tarfile.TarInfo("model/config.yaml")
        ok.size = 1
        tar.addfile(ok, io.BytesIO(b"x"))
        member.size = len(data) if member.isfile() else 0
        tar.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return str(path)


@pytest.mark.parametrize("kind", ["absolute", "dotdot", "symlink", "hardlink", "device"])
def test_crafted_archives_cannot_write_outside(kind, tmp_path, cache):
    victim = tmp_path / "victim.txt"
    member = tarfile.TarInfo({"absolute": str(victim), "dotdot": "model/../../../victim.txt"}.get(kind, "model/link"))
    if kind == "symlink":
        member.type, member.linkname = tarfile.SYMTYPE, str(tmp_path)
    elif kind == "hardlink":
        member.type, member.linkname = tarfile.LNKTYPE, "../../victim.txt"
    elif kind == "device":
        member.type = tarfile.CHRTYPE
    path = _crafted(tmp_path / f"{kind}.tar.gz", member)
    with pytest.raises(ArchiveError, match="refusing member"):
        speechtext.load_model(path)
    assert not victim.exists()
    assert os.listdir(cache / "archives") == []


def test_packing_a_broken_model_dir_is_refused(trained_model, tmp_path, cache):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(trained_model, broken)
    os.remove(broken / "config.yaml")
    with pytest.raises(CheckpointError, match="config.yaml missing"):
        pack_model(str(broken), str(tmp_path / "b.tar.gz"))
    assert not (tmp_path / "b.tar.gz").exists()
