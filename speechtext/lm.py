"""External language models for shallow fusion in beam search.

* A **token LM** (LSTM over the recogniser's own tokens, so no vocabulary mapping is needed), trained by
  :func:`train_lm` / ``speechtext lm train`` and saved as a directory: ``lm.json`` (kind, format
  version, config), ``tokenizer.json`` and ``model.safetensors``.
* An **n-gram LM** in ARPA or KenLM binary format (e.g. built with KenLM's ``lmplz``), read with the
  ``kenlm`` package. It scores whole words, so its score is added when a word ends (the word
  delimiter or end of sentence), as pyctcdecode and flashlight do.

Both load through :func:`load_lm` and return a scorer whose ``next_token(prefixes (N, L) starting with
<sos>)`` gives next-token log-probs ``(N, V + 1)`` (the last id is ``<eos>``), which
:func:`~speechtext.beam_search.beam_search` adds, weighted by ``lm_weight``; the token LM also scores
incrementally (``step``), carrying its LSTM state along the beam.
"""
from __future__ import annotations

import json
import math
import os
import random
from dataclasses import asdict

import torch
from torch import nn

from .config import LMConfig

LM_FILE = "lm.json"
LM_FORMAT_VERSION = 1


class LMError(ValueError):
    """An LM that cannot be used (wrong format, other vocabulary, bad training text); says what to do."""


class TokenLM(nn.Module):
    """LSTM language model over ``vocab_size + 1`` ids (the last is ``<sos/eos>``)."""

    def __init__(self, vocab_size: int, cfg: LMConfig):
        super().__init__()
        self.sos_eos = vocab_size
        self.embed = nn.Embedding(vocab_size + 1, cfg.embed_dim)
        self.rnn = nn.LSTM(cfg.embed_dim, cfg.hidden_size, cfg.layers, batch_first=True,
                           dropout=cfg.dropout if cfg.layers > 1 else 0.0)
        self.drop = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(cfg.hidden_size, vocab_size + 1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """``tokens (N, L)`` -> next-token log-probs ``(N, L, V + 1)``."""
        states, _ = self.rnn(self.drop(self.embed(tokens)))
        return self.out(self.drop(states)).log_softmax(-1)

    def next_token(self, tokens: torch.Tensor) -> torch.Tensor:
        """The scorer interface: ``(N, L)`` prefixes -> log-probs of the next token ``(N, V + 1)``."""
        return self.forward(tokens)[:, -1]

    def step(self, last: torch.Tensor, state=None):
        """Incremental scoring for beam search: the newest tokens ``(N,)`` and the LSTM state of the
        prefixes before them -> ``(next-token log-probs (N, V + 1), state)``; reorder the state's
        ``(h, c)`` along dim 1 when the beam reorders."""
        out, state = self.rnn(self.embed(last)[:, None], state)
        return self.out(out[:, 0]).log_softmax(-1), state


def read_lm_text(path: str, tokenizer, has_ids: bool = False) -> list[list[int]]:
    """One sentence per line (``has_ids``: Kaldi ``text``, the first field is an utterance id)."""
    out = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            text = line.split(maxsplit=1)[1] if has_ids and len(line.split()) > 1 else ("" if has_ids else line)
            ids = tokenizer.encode(text)
            if ids:
                out.append(ids)
    if not out:
        raise LMError(f"{path}: no text to train on (empty file{' or only ids' if has_ids else ''})")
    return out


def train_lm(text_path: str, tokenizer, out_dir: str, cfg: LMConfig | None = None, has_ids: bool = False,
             progress: bool = True) -> str:
    """Train a :class:`TokenLM` on a text file with the recogniser's ``tokenizer``; writes ``out_dir``
    (atomically: a temporary directory renamed at the end) and a ``train.log`` with perplexities."""
    from .checkpoint import save_weights
    from tqdm import tqdm

    cfg = cfg or LMConfig()
    sentences = read_lm_text(text_path, tokenizer, has_ids)
    rng = random.Random(cfg.seed)
    torch.manual_seed(cfg.seed)
    rng.shuffle(sentences)
    held = sentences[: max(1, len(sentences) // 20)] if len(sentences) >= 20 else []
    train = sentences[len(held):]
    lm = TokenLM(tokenizer.vocab_size, cfg)
    optimizer = torch.optim.AdamW(lm.parameters(), lr=cfg.lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, cfg.lr, total_steps=cfg.steps, pct_start=0.05)
    log = []
    for step in tqdm(range(1, cfg.steps + 1), disable=not progress, desc="lm"):
        lm.train()
        loss = _nll(lm, rng.sample(train, min(cfg.batch_size, len(train))))
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(lm.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        if step % max(1, cfg.steps // 10) == 0 or step == cfg.steps:
            log.append(f"step {step} train ppl/token {math.exp(loss.item()):.3f}" + _held_out(lm, held))
    tmp = out_dir.rstrip("/") + ".tmp"
    os.makedirs(tmp, exist_ok=True)
    save_weights({k: v.contiguous() for k, v in lm.state_dict().items()}, os.path.join(tmp, "model.safetensors"))
    tokenizer.save(tmp)
    with open(os.path.join(tmp, LM_FILE), "w", encoding="utf-8") as handle:
        json.dump({"kind": "token-lstm", "format_version": LM_FORMAT_VERSION, "config": asdict(cfg)}, handle, indent=1)
    with open(os.path.join(tmp, "train.log"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(log) + "\n")
    if os.path.isdir(out_dir):
        import shutil

        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    return out_dir


def _nll(lm: TokenLM, batch: list[list[int]]) -> torch.Tensor:
    """Mean per-token negative log-likelihood of sentences, each closed by ``<eos>``."""
    sos = lm.sos_eos
    inputs = nn.utils.rnn.pad_sequence([torch.tensor([sos] + s) for s in batch], batch_first=True, padding_value=sos)
    targets = nn.utils.rnn.pad_sequence([torch.tensor(s + [sos]) for s in batch], batch_first=True, padding_value=-100)
    log_probs = lm.forward(inputs)
    return nn.functional.nll_loss(log_probs.transpose(1, 2), targets, ignore_index=-100)


@torch.no_grad()
def _held_out(lm: TokenLM, held: list[list[int]]) -> str:
    if not held:
        return ""
    lm.eval()
    return f", held-out ppl/token {math.exp(_nll(lm, held).item()):.3f}"


class KenLMScorer:
    """Word n-gram scores at word ends for hypotheses over the recogniser's character tokens."""

    def __init__(self, path: str, tokenizer):
        try:
            import kenlm
        except ImportError as exc:
            raise LMError(f"{path}: n-gram LMs need the kenlm package: pip install 'speechtext[kenlm]'") from exc
        try:
            self.model = kenlm.Model(path)
        except Exception as exc:  # noqa: BLE001 - kenlm raises OSError and its own exception types
            raise LMError(f"{path}: not an ARPA or KenLM binary file ({exc})") from exc
        self.kenlm, self.tokenizer = kenlm, tokenizer
        self.delimiter = tokenizer.index[tokenizer.word_delimiter]
        self.cache: dict[tuple, tuple] = {}

    def _state(self, words: tuple[str, ...]):
        """KenLM state after ``<s> words`` and the log10 score so far (cached by prefix)."""
        if words in self.cache:
            return self.cache[words]
        if not words:
            state = self.kenlm.State()
            self.model.BeginSentenceWrite(state)
            result = (state, 0.0)
        else:
            previous, score = self._state(words[:-1])
            state = self.kenlm.State()
            result = (state, score + self.model.BaseScore(previous, words[-1], state))
        self.cache[words] = result
        return result

    def next_token(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(N, L)`` prefixes (starting with ``<sos>``) -> ``(N, V + 1)``: the word score where a word ends."""
        out = torch.zeros(tokens.shape[0], self.tokenizer.vocab_size + 1)
        ln10 = math.log(10.0)
        for n, row in enumerate(tokens[:, 1:].tolist()):
            row = [t for t in row if t < self.tokenizer.vocab_size]  # <sos/eos> fills empty beam slots
            words = tuple(self.tokenizer.decode(row).split())
            state, score = self._state(words)
            end = self.kenlm.State()
            eos = self.model.BaseScore(state, "</s>", end)
            if row and row[-1] != self.delimiter and words:  # a partial word: a delimiter or the end completes it
                gain = score - self._state(words[:-1])[1]
                out[n, self.delimiter], out[n, -1] = gain * ln10, (gain + eos) * ln10
            else:
                out[n, -1] = eos * ln10
        return out.to(tokens.device)


def load_lm(path: str, tokenizer):
    """A scorer for :func:`~speechtext.beam_search.beam_search` from an LM directory or an ARPA/KenLM file."""
    from safetensors.torch import load_file

    from .tokenizer import load_tokenizer

    if os.path.isfile(path):
        return KenLMScorer(path, tokenizer)
    meta = os.path.join(path, LM_FILE)
    if not os.path.isfile(meta):
        raise LMError(f"{path}: not an LM: expected a directory with {LM_FILE} (speechtext lm train) or an ARPA/KenLM file")
    try:
        info = json.load(open(meta, encoding="utf-8"))
        version, kind = info.get("format_version"), info.get("kind")
    except (ValueError, AttributeError) as exc:
        raise LMError(f"{meta}: not valid JSON ({exc})") from exc
    if kind != "token-lstm" or version != LM_FORMAT_VERSION:
        raise LMError(f"{meta}: LM kind {kind!r} format {version}; this speechtext reads token-lstm format {LM_FORMAT_VERSION}")
    if load_tokenizer(path).tokens != tokenizer.tokens:
        raise LMError(f"{path}: the LM was trained with another tokenizer than the model's; train it with this model")
    lm = TokenLM(tokenizer.vocab_size, LMConfig(**info["config"]))
    lm.load_state_dict(load_file(os.path.join(path, "model.safetensors")), strict=True)
    return lm.eval()
