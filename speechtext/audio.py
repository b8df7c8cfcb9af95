"""Audio input: any soundfile-readable file (or raw 16-bit PCM), mixed to mono, resampled to 16 kHz.

Every failure raises :class:`AudioError`, whose message names the source and what to do, so that a
batch job can report the bad item and carry on with the rest.
"""
from __future__ import annotations

import io
import os
import re
import subprocess
from dataclasses import dataclass

import numpy as np
import soundfile as sf

SAMPLE_RATE = 16000
# The shortest spoken words last about 0.15 s; below that wav2vec2-base yields at most 7 frames and
# an input is far more likely a truncated or broken file than speech.
MIN_SECONDS = 0.15


class AudioError(ValueError):
    """An audio input that cannot be used; the message names the source and the problem."""


@dataclass
class AudioSpec:
    """Where to read one utterance: a path (or a Kaldi pipe command ending in ``|``), optionally a segment."""

    source: str
    start: float = 0.0
    end: float | None = None


def _read_pipe(command: str) -> bytes:
    proc = subprocess.run(command[:-1], shell=True, capture_output=True, check=False)
    if proc.returncode != 0:
        raise AudioError(f"{command!r}: the command failed ({proc.stderr.decode(errors='replace').strip()})")
    return proc.stdout


def _is_pipe(source: str) -> bool:
    return source.rstrip().endswith("|")


# A member of an uncompressed tar (a Lhotse Shar shard) read in place: "<file>.tar:<offset>:<size>",
# as Kaldi's "<file>.ark:<offset>" names an entry of an archive (speechtext.shards writes these).
_TAR_MEMBER = re.compile(r"^(.+\.tar):(\d+):(\d+)$")


def _read_tar_member(source: str) -> bytes | None:
    match = _TAR_MEMBER.match(source)
    if match is None:
        return None
    path, offset, size = match.group(1), int(match.group(2)), int(match.group(3))
    _check_file(path)
    with open(path, "rb") as handle:
        handle.seek(offset)
        data = handle.read(size)
    if len(data) != size:
        raise AudioError(f"{source}: {path} ends before this member; the shard is truncated, convert it again")
    return data


def _check_file(source: str) -> None:
    if not os.path.exists(source):
        raise AudioError(f"{source}: file not found; check the path (relative paths are taken from the working directory)")
    if os.path.getsize(source) == 0:
        raise AudioError(f"{source}: the file is empty (0 bytes); re-create or remove it")


def probe_duration(spec: str | AudioSpec) -> float:
    """Duration in seconds from the header alone (segments from their times; pipes are decoded).
    Raises :class:`AudioError` with the same messages as :func:`load_audio`."""
    spec = AudioSpec(spec) if isinstance(spec, str) else spec
    if spec.end is not None:
        return spec.end - spec.start
    if _is_pipe(spec.source) or _TAR_MEMBER.match(spec.source):
        return len(load_audio(spec)) / SAMPLE_RATE
    _check_file(spec.source)
    if spec.source.lower().endswith((".pcm", ".raw", ".s16")):
        return os.path.getsize(spec.source) / 2 / SAMPLE_RATE
    try:
        return sf.info(spec.source).duration - spec.start
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioError(f"{spec.source}: cannot decode audio ({exc}); convert it to WAV/FLAC, e.g. with sox or ffmpeg") from exc


def _decode(source: str, data: bytes | None, start: float, end: float | None) -> tuple[np.ndarray, int]:
    obj = io.BytesIO(data) if data is not None else source
    if data is None and source.lower().endswith((".pcm", ".raw", ".s16")):
        # Headerless 16-bit little-endian PCM is taken to be 16 kHz mono.
        return np.fromfile(source, dtype="<i2").astype(np.float32) / 32768.0, SAMPLE_RATE
    try:
        info = sf.info(obj)
        if data is not None:
            obj.seek(0)
        first = int(round(start * info.samplerate))
        last = -1 if end is None else int(round(end * info.samplerate))
        samples, rate = sf.read(obj, start=first, stop=None if last < 0 else last, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise AudioError(f"{source}: cannot decode audio ({exc}); convert it to WAV/FLAC, e.g. with sox or ffmpeg") from exc
    return samples.mean(axis=1), rate


def load_audio(spec: str | AudioSpec, sample_rate: int = SAMPLE_RATE, max_seconds: float | None = None) -> np.ndarray:
    """Read one utterance as mono float32 at ``sample_rate``: shape ``(T,)``.

    ``spec`` is a file path, a Kaldi pipe (``"sox a.wav -t wav - |"``) or an :class:`AudioSpec`
    with a segment. Stereo is averaged to mono; other rates are resampled (soxr, librosa's resampler).
    Raises :class:`AudioError` for a missing, empty, corrupt, too short or too long input.
    """
    if isinstance(spec, str):
        spec = AudioSpec(spec)
    source = spec.source
    data = _read_pipe(source.rstrip()) if _is_pipe(source) else _read_tar_member(source)
    if data is None:
        _check_file(source)
    samples, rate = _decode(source, data, spec.start, spec.end)
    if rate != sample_rate:
        import soxr  # the resampler librosa uses, called directly (librosa's wrapper is far slower)

        samples = soxr.resample(samples, rate, sample_rate, "HQ")
    seconds = len(samples) / sample_rate
    if seconds < MIN_SECONDS:
        raise AudioError(f"{source}: only {seconds:.3f} s of audio; at least {MIN_SECONDS} s is needed")
    if max_seconds is not None and seconds > max_seconds:
        raise AudioError(f"{source}: {seconds:.1f} s is longer than the limit of {max_seconds:.0f} s; split it or raise the limit")
    if not np.isfinite(samples).all():
        raise AudioError(f"{source}: the audio contains NaN or infinite samples")
    return np.ascontiguousarray(samples, dtype=np.float32)


def normalize(samples: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance per utterance, as wav2vec2's feature extractor does: ``(T,) -> (T,)``."""
    return (samples - samples.mean()) / np.sqrt(samples.var() + 1e-7)
