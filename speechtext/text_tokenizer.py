"""The text encoder's tokenizer: a WordPiece vocabulary trained on the recipe's text with the
``tokenizers`` library, or a pretrained BERT-family tokenizer. Either way it is stored in the model
directory as one ``tokenizers`` JSON file, so loading needs neither the hub nor ``transformers``.
"""
from __future__ import annotations

import json
import os
import string

import torch

TEXT_TOKENIZER_FILE = "text_tokenizer.json"
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


class TextTokenizerError(ValueError):
    """Text that cannot be used as text-encoder input (e.g. it tokenises to nothing)."""


class TextTokenizer:
    def __init__(self, backend, pad: str = "[PAD]", cls: str = "[CLS]", sep: str = "[SEP]"):
        self.backend = backend
        self.pad_id, self.cls_id, self.sep_id = (backend.token_to_id(t) for t in (pad, cls, sep))
        self.unk_id = backend.token_to_id("[UNK]")
        if None in (self.pad_id, self.cls_id, self.sep_id):
            raise ValueError(f"text tokenizer: vocabulary lacks one of {pad}, {cls}, {sep}")
        self.backend.no_padding()
        self.backend.no_truncation()

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size()

    @classmethod
    def train(cls, texts, vocab_size: int = 1000) -> "TextTokenizer":
        """Train a lower-cased WordPiece vocabulary; every letter and digit is in it, so unseen words
        (zero-shot commands) still split into pieces instead of becoming ``[UNK]``. The same texts give
        the same vocabulary and ids in every process (so every DDP rank, and every rerun, agrees)."""
        from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers

        def empty(model):
            backend = Tokenizer(model)
            backend.normalizer = normalizers.BertNormalizer(lowercase=True)
            backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
            return backend

        texts = list(texts)
        backend = empty(models.WordPiece(unk_token="[UNK]"))
        alphabet = sorted(set(string.ascii_lowercase + string.digits + "'").union(
            *(backend.normalizer.normalize_str(t) for t in texts)) - set(string.whitespace))
        # The trainer numbers word-internal pieces ("##f") in hash-map order, and merge ties are broken
        # by those numbers, so the vocabulary differed from process to process (huggingface/tokenizers
        # #1794). Listed up front, every piece has its number before training starts.
        pieces = ["##" + c for c in alphabet]
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIALS + pieces,
                                            initial_alphabet=alphabet)
        backend.train_from_iterator(texts, trainer)
        # Rebuilt on the learned vocabulary so that only SPECIALS are special (added) tokens
        backend = empty(models.WordPiece(backend.get_vocab(), unk_token="[UNK]"))
        backend.add_special_tokens(SPECIALS)
        ids = [(t, backend.token_to_id(t)) for t in ("[CLS]", "[SEP]")]
        backend.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=ids)
        return cls(backend)

    @classmethod
    def from_pretrained(cls, name_or_path: str) -> "TextTokenizer":
        """A BERT-family fast tokenizer (hub id or directory), kept as its ``tokenizers`` backend."""
        from transformers import AutoTokenizer

        hf = AutoTokenizer.from_pretrained(name_or_path)
        return cls(hf.backend_tokenizer, pad=hf.pad_token, cls=hf.cls_token, sep=hf.sep_token)

    def encode(self, texts: list[str], max_length: int = 64, allow_empty: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Texts -> ``(ids (B, L), lengths (B,))``, padded with the pad id and cut at ``max_length``.

        Raises :class:`TextTokenizerError` naming the text when one has no content tokens, unless
        ``allow_empty`` (training transcripts: an empty one, e.g. a silence clip, is the text "nothing
        said", ``[CLS] [SEP]``)."""
        rows = []
        for text in texts:
            ids = self.backend.encode(text).ids
            if allow_empty and not text.strip():
                ids = [self.cls_id, self.sep_id]
            elif all(i in (self.cls_id, self.sep_id, self.pad_id, self.unk_id) for i in ids):
                raise TextTokenizerError(f"text {text!r} tokenises to nothing; give words")
            rows.append(ids[: max_length - 1] + [self.sep_id] if len(ids) > max_length else ids)
        lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)
        out = torch.full((len(rows), int(lengths.max()) if rows else 0), self.pad_id, dtype=torch.long)
        for i, row in enumerate(rows):
            out[i, : len(row)] = torch.tensor(row)
        return out, lengths

    def to_json(self) -> str:
        return json.dumps({"backend": json.loads(self.backend.to_str()), "pad": self.backend.id_to_token(self.pad_id),
                           "cls": self.backend.id_to_token(self.cls_id), "sep": self.backend.id_to_token(self.sep_id)},
                          ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> "TextTokenizer":
        from tokenizers import Tokenizer

        data = json.loads(text)
        return cls(Tokenizer.from_str(json.dumps(data["backend"])), data["pad"], data["cls"], data["sep"])

    def save(self, directory: str) -> None:
        with open(os.path.join(directory, TEXT_TOKENIZER_FILE), "w", encoding="utf-8") as handle:
            handle.write(self.to_json())

    @classmethod
    def load(cls, directory: str) -> "TextTokenizer":
        with open(os.path.join(directory, TEXT_TOKENIZER_FILE), encoding="utf-8") as handle:
            return cls.from_json(handle.read())
