"""Batched label-synchronous beam search of the attention decoder, with CTC prefix scores (joint
CTC/attention decoding, Watanabe et al. 2017) and optional shallow fusion with a language model.

Every utterance of a batch keeps ``beam`` hypotheses; all ``batch x beam`` hypotheses are extended
by every token at once: the attention decoder scores the next token, :class:`CTCPrefixScorer` how
much the prefix's CTC probability falls when the token is appended. ``ctc_weight=0`` is
attention-only decoding with the same search.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .models.audio_encoder import frame_mask

NEG = -1e30  # log 0 that stays finite, so that sums and logaddexp never produce NaN


class CTCPrefixScorer:
    """CTC prefix log-probabilities of ``N`` hypotheses for all next tokens at once.

    ``log_probs (B, T, V)`` of the CTC head with ``lengths (B,)``; frames past an utterance's
    length are turned into certain blanks so that they change nothing. Scores come out over
    ``V + 1`` ids: the CTC vocabulary and ``eos`` (= ``V``), whose score is the prefix's complete
    CTC probability; blank itself is never a next token.
    """

    def __init__(self, log_probs: torch.Tensor, lengths: torch.Tensor, blank: int):
        batch, frames, vocab = log_probs.shape
        x = log_probs.float().transpose(0, 1).clone()  # (T, B, V)
        past = torch.arange(frames, device=x.device)[:, None] >= lengths[None, :]  # (T, B)
        x[past] = NEG
        x[:, :, blank] = torch.where(past, 0.0, x[:, :, blank])
        self.x, self.blank, self.vocab, self.frames = x, blank, vocab, frames

    def initial(self, beam: int) -> tuple[torch.Tensor, torch.Tensor]:
        """State of the empty prefix for ``beam`` hypotheses per utterance, ``N = B x beam`` in
        utterance order: ``(r (T, 2, N), prefix log-prob (N,))``; ``r[t, 0/1]`` ends in a token / in blank at frame t."""
        batch = self.x.shape[1]
        self.beam, self.owner = beam, torch.arange(batch, device=self.x.device).repeat_interleave(beam)
        # Token probabilities scaled by their peak over frames, once per utterance, so that scoring every
        # next token of its hypotheses is one batched product over frames (float64: no underflow).
        x = self.x.double().transpose(0, 1)  # (B, T, V)
        peak = x.max(1).values  # (B, V)
        self.scaled, self.peak = (x - peak[:, None]).exp(), peak.repeat_interleave(beam, 0)  # (B, T, V), (N, V)
        blanks = self.x[:, self.owner, self.blank].cumsum(0)
        return torch.stack([torch.full_like(blanks, NEG), blanks], 1), torch.zeros(len(self.owner), device=blanks.device)

    def scores(self, r: torch.Tensor, last: torch.Tensor, empty: torch.Tensor) -> torch.Tensor:
        """Prefix log-probs ``(N, V + 1)`` of each hypothesis extended by every id.

        ``r (T, 2, N)`` is the hypotheses' state, ``last (N,)`` their last token (any value when
        ``empty (N,)`` marks a hypothesis with no token yet)."""
        start = torch.where(empty, 0.0, NEG).to(r)  # the empty prefix is complete before frame 0
        whole = torch.logaddexp(r[:, 0], r[:, 1])  # (T, N)
        before = torch.cat([start[None], whole[:-1]]).double()  # complete by frame t - 1
        top = before.max(0).values  # (N,)
        weights = (before - top).exp().T.reshape(-1, self.beam, before.shape[0])  # (B, beam, T)
        total = torch.bmm(weights, self.scaled).flatten(0, 1)  # (N, V)
        psi = torch.where(total > 0, top[:, None] + self.peak + total.clamp_min(1e-300).log(), NEG).float()
        # A token equal to the last one can only follow it after a blank.
        token = last.clamp(0, self.vocab - 1)
        after_blank = torch.cat([torch.full_like(start, NEG)[None], r[:-1, 1]])
        repeat = torch.logsumexp(after_blank + self.x[:, self.owner, token], dim=0)  # (N,)
        rows = (~empty).nonzero()[:, 0]
        psi[rows, token[rows]] = repeat[rows]
        psi[:, self.blank] = NEG
        return torch.cat([psi, whole[-1][:, None]], 1)  # eos: every frame consumed

    def advance(self, r, last, empty, src: torch.Tensor, token: torch.Tensor) -> torch.Tensor:
        """State ``(T, 2, M)`` of the kept extensions: hypothesis ``src[j]`` followed by ``token[j]``
        (``src, token (M,)``, parents keep their slot's utterance; other arguments as in :meth:`scores`).
        Only these M of the N x V extensions need the forward recursion, and it runs as two
        log-cumulative sums over frames instead of a loop over them (float64: the sums run to thousands)."""
        token = token.clamp(0, self.vocab - 1)
        repeat = (token == last[src]) & ~empty[src]
        whole = torch.logaddexp(r[:, 0, src], r[:, 1, src])
        phi = torch.where(repeat[None], r[:, 1, src], whole).double()  # (T, M)
        x = self.x[:, self.owner[src], token].double()  # (T, M)
        blank = self.x[:, self.owner[src], self.blank].double()
        start = torch.where(empty[src], x[0], torch.full_like(x[0], NEG))
        ends = _linear_recursion(start, phi[:-1], x)
        blanks = _linear_recursion(torch.full_like(start, NEG), ends[:-1], blank)
        return torch.stack([ends, blanks], 1).to(r.dtype)


def _linear_recursion(first: torch.Tensor, inflow: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``y[0] = first``, ``y[t] = logaddexp(y[t-1], inflow[t-1]) + x[t]`` for ``x (T, M)``,
    ``inflow (T-1, M)``, all frames at once: ``y[t] = S[t] + logcumsumexp(w)[t]`` with
    ``S[t] = x[1] + ... + x[t]`` and ``w = (first, inflow[t-1] - S[t-1])``."""
    total = torch.cat([torch.zeros_like(x[:1]), x[1:].cumsum(0)])
    return total + torch.logcumsumexp(torch.cat([first[None], inflow - total[:-1]]), dim=0)


@dataclass
class SearchOptions:
    beam: int = 10
    ctc_weight: float = 0.3  # 0: attention only
    lm_weight: float = 0.0
    length_bonus: float = 0.0  # added per token, against a search's bias to short outputs
    end_margin: float = 10.0  # an utterance stops when its live hypotheses fall this far below an ended one


def _prune(best, index, tokens, ended, live, frame_lengths, step: int, k: int, width: int, eos: int, margin: float):
    """Per utterance, from its ``2k`` best extensions ``(value, flat index)``: endings ranked inside
    the beam are final (as fairseq), the first ``k`` others continue. Returns ``(rows, scores (B, k))``
    with rows ``(slot, parent, token)``; marks utterances that are done in ``live``."""
    rows, scores = [], torch.full((len(ended), k), NEG, device=tokens.device)
    for b in range(len(ended)):
        kept = []
        for rank, (value, flat) in enumerate(zip(best[b].tolist(), index[b].tolist())):
            parent, token = b * k + flat // width, flat % width
            if value <= NEG / 2 or not live[b]:
                continue
            if token == eos or step + 1 >= int(frame_lengths[b]):
                if rank < k:
                    seq = tokens[parent, 1:].tolist() + ([] if token == eos else [token])
                    ended[b].append((value / (len(seq) + 1), value, seq))  # ranked by score per token
            elif len(kept) < k:
                kept.append((value, parent, token))
        for j, (value, parent, token) in enumerate(kept):
            scores[b, j] = value
            rows.append((b * k + j, parent, token))
        if len(ended[b]) >= k or not kept or (ended[b] and kept[0][0] < max(e[1] for e in ended[b]) - margin):
            live[b] = False
    return rows, scores


class TorchDecoder:
    """The attention decoder of a PyTorch model over one batch's frames, stepped incrementally (cached
    keys and values). :func:`beam_search` needs only ``sos_eos``, ``start``, ``step`` and ``reorder``,
    so another runtime (the ONNX Runtime backend) supplies its own."""

    def __init__(self, model, frames: torch.Tensor, frame_lengths: torch.Tensor):
        self.head, self.fusion, self.sos_eos = model.heads["attention"], model.fusion, model.heads["attention"].sos_eos
        self.cross = self.fusion.memory(frames, frame_lengths).kv
        self.mask = frame_mask(frame_lengths, frames.shape[1])[:, None, None, :]

    def start(self, owner: torch.Tensor):
        """State of hypotheses of utterances ``owner (N,)`` before any token."""
        batch = self.mask.shape[0]
        group = len(owner) // batch
        if group * batch == len(owner) and torch.equal(owner, torch.arange(batch, device=owner.device).repeat_interleave(group)):
            return self.cross, self.mask, [None] * len(self.cross), group  # a beam per utterance: no copies
        return [(k[owner], v[owner]) for k, v in self.cross], self.mask[owner], [None] * len(self.cross), 1

    def step(self, last: torch.Tensor, position: int, state):
        """Next-token logits ``(N, V + 1)`` after tokens ``last (N,)`` at ``position``, and the new state."""
        cross, mask, past, group = state
        fused, past = self.fusion.step(self.head.embed_step(last, position), past, cross, mask, group)
        return self.head.out(fused).float(), (cross, mask, past, group)

    def reorder(self, state, src: torch.Tensor):
        """Keep the state of hypotheses ``src (N,)`` (parents stay within their utterance)."""
        cross, mask, past, group = state
        return cross, mask, [(k[src], v[src]) for k, v in past], group


@torch.inference_mode()
def beam_search(decoder, log_probs, frame_lengths, blank: int, opts: SearchOptions, lm=None) -> list[list[int]]:
    """Best token ids per utterance. ``decoder``: a :class:`TorchDecoder` (or another runtime's) over the
    batch's frames; ``log_probs (B, T, V)`` of the CTC head (used when ``opts.ctc_weight > 0``) with
    ``frame_lengths (B,)``; ``lm`` is a scorer from :func:`speechtext.lm.load_lm` (incremental ``step``
    when it has one, else ``next_token`` on prefixes)."""
    batch, k, eos, device = log_probs.shape[0], opts.beam, decoder.sos_eos, log_probs.device
    owner = torch.arange(batch, device=device).repeat_interleave(k)
    state, lm_state, ctc = decoder.start(owner), None, None
    if opts.ctc_weight > 0:
        ctc = CTCPrefixScorer(log_probs, frame_lengths, blank)
        r, prefix = ctc.initial(k)
    use_lm = lm is not None and opts.lm_weight != 0
    tokens = torch.full((batch * k, 1), eos, dtype=torch.long, device=device)
    scores = torch.full((batch, k), NEG, device=device)
    scores[:, 0] = 0.0  # one live hypothesis at first, so the beam does not fill with copies
    ended, live = [[] for _ in range(batch)], torch.ones(batch, dtype=torch.bool)
    for step in range(int(frame_lengths.max())):
        logits, state = decoder.step(tokens[:, -1], step, state)
        total = (1 - opts.ctc_weight) * logits.log_softmax(-1)
        if ctc is not None:
            empty = torch.full_like(owner, step == 0, dtype=torch.bool)
            psi = ctc.scores(r, tokens[:, -1], empty)
            total = total + opts.ctc_weight * (psi - prefix[:, None])
        if use_lm:
            lm_scores, lm_state = lm.step(tokens[:, -1], lm_state) if hasattr(lm, "step") else (lm.next_token(tokens), None)
            total = total + opts.lm_weight * lm_scores
        total[:, blank] = NEG
        total, width = total + opts.length_bonus, total.shape[1]
        dead = scores.view(-1, 1) <= NEG / 2  # empty slots stay empty, whatever their stale state scores
        best, index = torch.where(dead, NEG, scores.view(-1, 1) + total).view(batch, k * width).topk(2 * k, dim=1)
        rows, scores = _prune(best, index, tokens, ended, live, frame_lengths, step, k, width, eos, opts.end_margin)
        if not live.any():
            break
        slot, parent, token = (torch.tensor(c, device=device) for c in zip(*rows))
        src = torch.zeros(batch * k, dtype=torch.long, device=device).index_copy(0, slot, parent)
        last = torch.full((batch * k,), eos, dtype=torch.long, device=device).index_copy(0, slot, token)
        if ctc is not None:
            r, prefix = ctc.advance(r, tokens[:, -1], empty, src, last), psi[src, last]
        tokens = torch.cat([tokens[src], last[:, None]], 1)
        state = decoder.reorder(state, src)
        if lm_state is not None:
            lm_state = tuple(x[:, src] for x in lm_state)
    return [max(e)[2] if e else [] for e in ended]
