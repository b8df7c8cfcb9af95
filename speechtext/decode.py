"""CTC decoding: greedy and prefix beam search over ``(T, V)`` log-probabilities."""
from __future__ import annotations

import math
from collections import defaultdict

import torch


def ctc_greedy(log_probs: torch.Tensor, lengths: torch.Tensor, blank_id: int) -> list[list[int]]:
    """Best path: argmax per frame, repeats collapsed, blanks dropped. ``(B, T, V)`` -> token id lists."""
    best = log_probs.argmax(dim=-1).cpu()
    out = []
    for row, length in zip(best, lengths.tolist()):
        ids = torch.unique_consecutive(row[:length]).tolist()
        out.append([i for i in ids if i != blank_id])
    return out


def _logaddexp(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    return max(a, b) + math.log1p(math.exp(-abs(a - b)))


def ctc_prefix_beam_search(log_probs: torch.Tensor, blank_id: int, beam: int = 8,
                           prune: float = -12.0) -> list[tuple[tuple[int, ...], float]]:
    """Prefix beam search on one utterance, ``(T, V)`` log-probs (already trimmed to its length).

    Keeps, per prefix, the probability of ending in blank and in non-blank, so that repeated tokens
    separated by a blank are told apart from one token held over frames. Tokens whose frame
    log-prob is below ``prune`` are not extended. Returns ``[(prefix, log_score)]``, best first.
    """
    if beam < 1:
        raise ValueError(f"beam must be at least 1, got {beam}")
    lp = log_probs.float().cpu()
    beams = {(): (0.0, -math.inf)}  # prefix -> (log p ending in blank, log p ending in non-blank)
    for t in range(lp.shape[0]):
        frame = lp[t]
        candidates = [int(i) for i in torch.nonzero(frame > prune).flatten()] or [int(frame.argmax())]
        nxt = defaultdict(lambda: (-math.inf, -math.inf))
        for prefix, (p_b, p_nb) in beams.items():
            total = _logaddexp(p_b, p_nb)
            for token in candidates:
                p = float(frame[token])
                if token == blank_id:
                    b, nb = nxt[prefix]
                    nxt[prefix] = (_logaddexp(b, total + p), nb)
                    continue
                last = prefix[-1] if prefix else None
                extended = prefix + (token,)
                b, nb = nxt[extended]
                # After a non-blank, the same token again only extends the prefix via a blank in between.
                nxt[extended] = (b, _logaddexp(nb, (p_b if token == last else total) + p))
                if token == last:
                    b, nb = nxt[prefix]
                    nxt[prefix] = (b, _logaddexp(nb, p_nb + p))
        ranked = sorted(nxt.items(), key=lambda kv: _logaddexp(*kv[1]), reverse=True)
        beams = dict(ranked[:beam])
    return [(prefix, _logaddexp(*scores)) for prefix, scores in beams.items()]
