"""Scoring: WER/CER with jiwer, and per-utterance alignments in the spirit of sclite's ``pra`` file."""
from __future__ import annotations

import os

import jiwer

from .data import read_table
from .tokenizer import normalize_text


def error_rates(refs: list[str], hyps: list[str]) -> dict:
    """Corpus WER and CER in percent, with word error counts. Empty references are skipped for CER."""
    pairs = [(normalize_text(r), normalize_text(h)) for r, h in zip(refs, hyps)]
    pairs = [(r, h) for r, h in pairs if r]
    if not pairs:
        return {"wer": 0.0, "cer": 0.0, "words": 0, "sub": 0, "del": 0, "ins": 0, "sentences": 0, "sentence_errors": 0}
    refs, hyps = zip(*pairs)
    words = jiwer.process_words(list(refs), list(hyps))
    chars = jiwer.process_characters(list(refs), list(hyps))
    n_words = words.hits + words.substitutions + words.deletions
    return {"wer": 100 * words.wer, "cer": 100 * chars.cer, "words": n_words, "sub": words.substitutions,
            "del": words.deletions, "ins": words.insertions, "sentences": len(refs),
            "sentence_errors": sum(r.split() != h.split() for r, h in zip(refs, hyps))}


def _align_lines(utt: str, ref: str, hyp: str) -> list[str]:
    out = jiwer.process_words(ref or "<empty>", hyp)
    ref_words, hyp_words = (ref or "<empty>").split(), hyp.split()
    ref_row, hyp_row, ops = [], [], []
    for chunk in out.alignments[0]:
        r = ref_words[chunk.ref_start_idx:chunk.ref_end_idx]
        h = hyp_words[chunk.hyp_start_idx:chunk.hyp_end_idx]
        if chunk.type == "delete":
            h = ["***"] * len(r)
        elif chunk.type == "insert":
            r = ["***"] * len(h)
        code = {"equal": "", "substitute": "S", "delete": "D", "insert": "I"}[chunk.type]
        for a, b in zip(r, h):
            width = max(len(a), len(b))
            ref_row.append(a.upper() if code else a.ljust(width))
            ref_row[-1] = ref_row[-1].ljust(width)
            hyp_row.append(b.upper().ljust(width) if code else b.ljust(width))
            ops.append(code.ljust(width))
    return [f"id: {utt}", f"Scores: (#C #S #D #I) {out.hits} {out.substitutions} {out.deletions} {out.insertions}",
            "REF:  " + " ".join(ref_row), "HYP:  " + " ".join(hyp_row), "Eval: " + " ".join(ops).rstrip(), ""]


def score_files(ref_path: str, hyp_path: str, out_dir: str | None = None) -> dict:
    """Score Kaldi ``text`` files (``utt-id words...``). Hypotheses missing for a reference count as
    empty (all deletions). Writes ``wer.txt`` and ``per_utt.pra`` to ``out_dir`` when given."""
    refs = {k: v for _, k, v in read_table(ref_path, min_fields=1)}
    hyps = {k: v for _, k, v in read_table(hyp_path, min_fields=1)}
    extra = sorted(set(hyps) - set(refs))
    missing = sorted(set(refs) - set(hyps))
    ids = sorted(refs)
    result = error_rates([refs[i] for i in ids], [hyps.get(i, "") for i in ids])
    result.update(missing=len(missing), extra=len(extra))
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "per_utt.pra"), "w", encoding="utf-8") as handle:
            for utt in ids:
                handle.write("\n".join(_align_lines(utt, normalize_text(refs[utt]), normalize_text(hyps.get(utt, "")))) + "\n")
        with open(os.path.join(out_dir, "wer.txt"), "w", encoding="utf-8") as handle:
            handle.write(format_result(result) + "\n")
    return result


def format_result(result: dict) -> str:
    line = (f"%WER {result['wer']:.2f} [ {result['sub'] + result['del'] + result['ins']} / {result['words']}, "
            f"{result['ins']} ins, {result['del']} del, {result['sub']} sub ] %CER {result['cer']:.2f} "
            f"%SER {100 * result['sentence_errors'] / max(1, result['sentences']):.2f} [ {result['sentence_errors']} / {result['sentences']} ]")
    if result.get("missing"):
        line += f" ({result['missing']} references had no hypothesis and count as deleted)"
    return line
