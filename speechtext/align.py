"""Word timings from CTC forced alignment, joining the words of overlapping chunks, and writers for
subtitles (SRT, WebVTT) and Kaldi CTM files."""
from __future__ import annotations

from dataclasses import dataclass

import torch


class AlignError(ValueError):
    """A transcript that cannot be aligned to its audio; the message says why."""


@dataclass
class Word:
    word: str
    start: float  # seconds
    end: float
    score: float  # mean CTC posterior of the word's tokens on its aligned frames

    def to_dict(self) -> dict:
        return {"word": self.word, "start": round(self.start, 3), "end": round(self.end, 3), "score": round(self.score, 3)}


def align_words(log_probs: torch.Tensor, tokens: list[int], tokenizer, hop: float, offset: float = 0.0) -> list[Word]:
    """Force-align ``tokens`` (ids of the CTC tokenizer, words split by its delimiter) to ``log_probs (T, V)``
    of one utterance and return its words with times: frame ``t`` spans ``[t, t + 1) * hop`` seconds
    after ``offset``."""
    import torchaudio.functional as AF

    tokens = [t for t in tokens if t != tokenizer.blank_id]
    if not tokens:
        return []
    repeats = sum(a == b for a, b in zip(tokens, tokens[1:]))
    if len(tokens) + repeats > log_probs.shape[0]:
        raise AlignError(f"{len(tokens)} tokens need at least {len(tokens) + repeats} frames; the audio has "
                         f"{log_probs.shape[0]} ({log_probs.shape[0] * hop:.2f} s)")
    path, scores = AF.forced_align(log_probs[None].float().cpu(), torch.tensor([tokens]), blank=tokenizer.blank_id)
    spans = AF.merge_tokens(path[0], scores[0].exp(), blank=tokenizer.blank_id)
    delimiter = tokenizer.index.get(tokenizer.word_delimiter)
    words, current = [], []
    for span in spans + [None]:
        if span is None or span.token == delimiter:
            if current:
                words.append(Word(tokenizer.decode([s.token for s in current]), offset + current[0].start * hop,
                                  offset + current[-1].end * hop, sum(s.score for s in current) / len(current)))
            current = []
        else:
            current.append(span)
    return words


def token_durations(log_probs: torch.Tensor, tokens: list[int], blank: int, num_frames: int) -> list[int]:
    """Durations of a silence unit, each of ``tokens`` and a closing silence unit, in output frames
    (e.g. mel frames) that sum to ``num_frames``, from CTC forced alignment over ``log_probs (T, V)``.

    CTC marks each token with a spike, not a span: a token is taken to reach halfway to its
    neighbours' spikes, the leading silence to end as far before the first spike as the first token
    reaches after it (and the trailing one likewise). Returns ``len(tokens) + 2`` integers."""
    import torchaudio.functional as AF

    tokens = [t for t in tokens if t != blank]
    frames = log_probs.shape[0]
    repeats = sum(a == b for a, b in zip(tokens, tokens[1:]))
    if not tokens or len(tokens) + repeats > frames:
        raise AlignError(f"{len(tokens)} tokens cannot be aligned to {frames} frames")
    path, _ = AF.forced_align(log_probs[None].float().cpu(), torch.tensor([tokens]), blank=blank)
    spans = AF.merge_tokens(path[0], torch.zeros(frames), blank=blank)
    centres = [(span.start + span.end) / 2 for span in spans]
    inner = [(a + b) / 2 for a, b in zip(centres, centres[1:])]
    first_reach = (inner[0] - centres[0]) if inner else 1.0
    last_reach = (centres[-1] - inner[-1]) if inner else 1.0
    bounds = [0.0, max(0.0, centres[0] - first_reach), *inner, min(float(frames), centres[-1] + last_reach), float(frames)]
    scale = num_frames / frames
    edges = [min(num_frames, max(0, round(b * scale))) for b in bounds]
    edges[0], edges[-1] = 0, num_frames
    return [b - a for a, b in zip(edges, edges[1:])]


def join_chunks(pieces: list[list[Word]], keep: list[tuple[float, float]]) -> list[Word]:
    """Join the words of overlapping chunks: chunk ``i`` contributes the words whose midpoint lies in
    its kept region ``keep[i] = (start, end)`` (absolute seconds; the regions tile the recording, so
    every word is taken from the chunk that saw it with context on both sides, and only once)."""
    out = []
    for words, (start, end) in zip(pieces, keep):
        out += [w for w in words if start <= (w.start + w.end) / 2 < end]
    return sorted(out, key=lambda w: w.start)


def check_chunking(chunk: float, stride: float) -> None:
    """Raise ``ValueError`` for a chunk/stride pair whose kept middles could not tile a recording."""
    if chunk <= 0 or stride < 0 or stride >= chunk / 2:
        raise ValueError(f"chunk {chunk} s with stride {stride} s cannot work: the stride (context dropped on "
                         "each side) must be at least 0 and less than half the chunk")


def chunk_windows(seconds: float, chunk: float, stride: float) -> list[tuple[float, float, float, float]]:
    """Windows ``(start, end, keep_start, keep_end)`` covering ``seconds`` of audio: ``chunk`` seconds
    each, neighbours overlapping by ``2 * stride``; a window keeps its middle, the first and last
    also their outer edge."""
    check_chunking(chunk, stride)
    step, windows, start = chunk - 2 * stride, [], 0.0
    while True:
        end = min(start + chunk, seconds)
        last = seconds - end < 1.0  # a sliver of under a second joins this window rather than making its own
        end = seconds if last else end
        windows.append((start, end, start + stride if windows else 0.0, seconds if last else end - stride))
        if last:
            return windows
        start += step


def _clock(seconds: float, sep: str) -> str:
    ms = int(round(seconds * 1000))
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d}{sep}{ms % 1000:03d}"


def cues(words: list[Word], max_words: int = 10, max_seconds: float = 5.0, max_gap: float = 1.0) -> list[tuple[float, float, str]]:
    """Group words into subtitle cues ``(start, end, text)``: a cue ends at ``max_words``, after
    ``max_seconds``, or at a pause longer than ``max_gap``."""
    out, current = [], []
    for w in words:
        if current and (len(current) >= max_words or w.end - current[0].start > max_seconds
                        or w.start - current[-1].end > max_gap):
            out.append((current[0].start, current[-1].end, " ".join(x.word for x in current)))
            current = []
        current.append(w)
    if current:
        out.append((current[0].start, current[-1].end, " ".join(x.word for x in current)))
    return out


def to_srt(words: list[Word]) -> str:
    return "".join(f"{i}\n{_clock(s, ',')} --> {_clock(e, ',')}\n{text}\n\n" for i, (s, e, text) in enumerate(cues(words), 1))


def to_vtt(words: list[Word]) -> str:
    return "WEBVTT\n\n" + "".join(f"{_clock(s, '.')} --> {_clock(e, '.')}\n{text}\n\n" for s, e, text in cues(words))


def ctm_lines(recording: str, words: list[Word], offset: float = 0.0) -> list[str]:
    """Kaldi CTM rows ``<recording> 1 <start> <duration> <word> <confidence>``."""
    return [f"{recording} 1 {w.start + offset:.3f} {w.end - w.start:.3f} {w.word} {w.score:.2f}" for w in words]


@dataclass
class Alignment:
    """Words of one utterance aligned to its audio, or ``error`` saying why not."""

    id: str
    source: str
    words: list | None = None
    error: str | None = None


def align_utterances(pipeline, utterances, options=None, progress: bool = False) -> list[Alignment]:
    """Force-align each utterance's reference ``text`` (a :class:`~speechtext.data.Utterance`) to its
    audio with the CTC head; times are relative to the utterance's start. A bad utterance gets
    ``error`` and the rest are still aligned."""
    from .config import TranscribeOptions
    from .models.audio_encoder import frame_hop, frame_shift
    from .runner import encode_loaded, run_batches

    opts = options or TranscribeOptions()
    utterances = list(utterances)
    items = [Alignment(u.utt_id, u.audio.source) for u in utterances]
    hop, shift = frame_hop(pipeline.model.audio_encoder), frame_shift(pipeline.model.audio_encoder)

    def process(loaded):
        frames, lengths = encode_loaded(pipeline, loaded, opts.precision)
        with torch.inference_mode():
            log_probs = pipeline.model.heads["ctc"](frames)
        for row, (i, _) in enumerate(loaded):
            try:
                ids = pipeline.tokenizer.encode(utterances[i].text or "")
                items[i].words = align_words(log_probs[row, : lengths[row]], ids, pipeline.tokenizer, hop, shift)
            except AlignError as exc:
                items[i].error = f"{items[i].id}: {exc}"

    run_batches(items, [u.audio for u in utterances], opts, process, progress)
    return items
