"""Closed-set intents read from a transcript: a logistic regression over word unigrams and bigrams,
fitted on the training transcripts and their ``utt2intent`` at the end of training.

Why a second classifier: the intent head reads the audio, and on a synthesiser it never heard it is
the first thing to fail (90-93 % on ``test_flite``), while the joint + LM transcript of the same audio
is 97 % word-correct. :func:`speechtext.crossmodal.classify_command` multiplies the head's posterior
by this one's on what the recogniser heard (``CommandOptions.intent_from``). It is plain data: the
n-gram list, the intents and float32 weights (base64) in one JSON object, saved in the model directory
(:data:`INTENT_TEXT_FILE`) and in an ONNX export's metadata.
"""
from __future__ import annotations

import base64
import collections
import json
import os

import numpy as np
import torch

INTENT_TEXT_FILE = "transcript_intents.json"


def ngrams(text: str) -> list[str]:
    """The features of a transcript: its words and its word bigrams with sentence-edge markers, so that
    the first and last word count apart ("lights off" against "off the lights")."""
    words = text.lower().split()
    edged = ["<s>", *words, "</s>"]
    return words + [f"{a} {b}" for a, b in zip(edged, edged[1:])]


class TranscriptIntents:
    """``log_probs(texts)``: ``(N, I)`` log-posteriors of ``intents`` for each transcript."""

    def __init__(self, grams: list[str], intents: list[str], weight: torch.Tensor, bias: torch.Tensor):
        if weight.shape != (len(grams), len(intents)) or bias.shape != (len(intents),):
            raise ValueError(f"transcript intents: weight {tuple(weight.shape)} and bias {tuple(bias.shape)} do not "
                             f"fit {len(grams)} n-grams and {len(intents)} intents")
        self.grams, self.intents = list(grams), list(intents)
        self.index = {g: i for i, g in enumerate(self.grams)}
        self.weight, self.bias = weight.float(), bias.float()

    def bags(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Each text's known n-grams as ``embedding_bag`` input: flat indices and per-text offsets."""
        indices, offsets = [], []
        for text in texts:
            offsets.append(len(indices))
            indices += sorted({self.index[g] for g in ngrams(text) if g in self.index})  # unknown ones dropped
        return torch.tensor(indices, dtype=torch.long), torch.tensor(offsets, dtype=torch.long)

    def logits(self, texts: list[str], weight=None, bias=None) -> torch.Tensor:
        """``(N, I)``: the summed weights of each text's n-grams plus the bias."""
        weight, bias = (self.weight, self.bias) if weight is None else (weight, bias)
        indices, offsets = self.bags(texts)
        return torch.nn.functional.embedding_bag(indices, weight, offsets, mode="sum") + bias

    def log_probs(self, texts: list[str]) -> torch.Tensor:
        return self.logits(texts).log_softmax(-1)

    def to_json(self) -> str:
        pack = lambda t: base64.b64encode(t.detach().cpu().numpy().astype("<f4").tobytes()).decode("ascii")
        return json.dumps({"ngrams": self.grams, "intents": self.intents, "weight": pack(self.weight),
                           "bias": pack(self.bias)}, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str, where: str = "transcript intents") -> "TranscriptIntents":
        try:
            data = json.loads(text)
            unpack = lambda s: torch.from_numpy(np.frombuffer(base64.b64decode(s), dtype="<f4").copy())
            grams, intents = data["ngrams"], data["intents"]
            weight = unpack(data["weight"]).reshape(len(grams), len(intents))
            return cls(grams, intents, weight, unpack(data["bias"]))
        except (ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise ValueError(f"{where}: unreadable transcript intent classifier ({exc}); train the model again or "
                             f"delete the file to classify intents from the audio alone") from exc

    def save(self, folder: str) -> None:
        with open(os.path.join(folder, INTENT_TEXT_FILE), "w", encoding="utf-8") as handle:
            handle.write(self.to_json())

    @classmethod
    def load(cls, folder: str) -> "TranscriptIntents | None":
        """The classifier of a model directory, or ``None`` for one saved without (no intents, or older)."""
        path = os.path.join(folder, INTENT_TEXT_FILE)
        if not os.path.isfile(path):
            return None
        with open(path, encoding="utf-8") as handle:
            return cls.from_json(handle.read(), where=path)


def fit_transcript_intents(texts: list[str], labels: list[str], intents: list[str], l2: float = 1e-4,
                           iterations: int = 200) -> TranscriptIntents:
    """Fit the classifier on training transcripts and their intent labels (each one of ``intents``).

    Repeated (text, label) pairs are counted once with their count as weight, so the fit costs what
    the distinct phrasings cost, not the corpus size. L-BFGS from zeros: deterministic."""
    pairs = collections.Counter((t, lab) for t, lab in zip(texts, labels) if lab)
    grams = sorted({g for t, _ in pairs for g in ngrams(t)})
    model = TranscriptIntents(grams, intents, torch.zeros(len(grams), len(intents)), torch.zeros(len(intents)))
    if not pairs:
        return model
    texts = [t for t, _ in pairs]
    index = {name: i for i, name in enumerate(intents)}
    y = torch.tensor([index[lab] for _, lab in pairs])
    counts = torch.tensor([float(c) for c in pairs.values()])
    weight = torch.zeros(len(grams), len(intents), requires_grad=True)
    bias = torch.zeros(len(intents), requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=iterations, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        logits = model.logits(texts, weight, bias)
        loss = (torch.nn.functional.cross_entropy(logits, y, reduction="none") * counts).sum() / counts.sum()
        loss = loss + l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return TranscriptIntents(grams, intents, weight.detach(), bias.detach())


def run_classifier(examples: list[tuple[str, str]], intents: list[str] | None, train_config) -> TranscriptIntents | None:
    """What a training run saves: the classifier fitted on its ``(transcript, intent)`` examples, or,
    for a synthesis run (which leaves the command head as it was), its ``train.init_from`` model's."""
    if examples and train_config.task != "synthesis":
        texts, labels = zip(*examples)
        return fit_transcript_intents(list(texts), list(labels), intents)
    return TranscriptIntents.load(train_config.init_from) if train_config.init_from and intents else None
