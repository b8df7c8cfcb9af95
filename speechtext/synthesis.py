"""The synthesis head's inputs: text as recogniser tokens framed by silence units, each token tied to
the text-encoder token it lies in, and a batch of them padded with lengths.

(Work in progress for `speechtext synthesize`: training batches and inference come next.)
"""
from __future__ import annotations

import torch

from .tokenizer import normalize_text


class SynthesisError(ValueError):
    """Text or a reference that cannot be synthesised; the message names it and says what to do."""


def synthesis_tokens(text: str, tokenizer, text_tokenizer) -> tuple[list[int], list[int]]:
    """``text`` -> ``(tokens, fused_index)``: the recogniser's token ids with a silence unit (the word
    delimiter) at each end, ``(L,)``, and for each the position of the text-encoder token it lies in
    (``-1`` for the silence units and spaces), ``(L,)``. Characters the recogniser lacks are named."""
    text = normalize_text(text)
    if not text:
        raise SynthesisError("empty text: give words to speak")
    missing = sorted({c for c in text if c != " " and c not in tokenizer.index})
    if missing:
        raise SynthesisError(f"text {text!r} has characters the model cannot speak: {' '.join(missing)}; "
                             "spell them out or remove them")
    encoding = text_tokenizer.backend.encode(text)
    owner = [-1] * len(text)
    for k, ((start, end), special) in enumerate(zip(encoding.offsets, encoding.special_tokens_mask)):
        if not special:
            owner[start:end] = [k] * (end - start)
    silence = tokenizer.index[tokenizer.word_delimiter]
    tokens = [silence] + tokenizer.encode(text) + [silence]
    index = [-1] + [o if c != " " else -1 for c, o in zip(text, owner)] + [-1]
    return tokens, index


def pad_rows(rows: list[list[int]], value: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer rows -> ``(padded (B, L), lengths (B,))``."""
    lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)
    out = torch.full((len(rows), int(lengths.max()) if rows else 0), value, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out, lengths
