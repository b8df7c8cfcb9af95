"""Tokenizers for recognition targets. Today: characters (built from training text, or imported from
a Hugging Face ``vocab.json``). A subword tokenizer plugs in through the same four methods:
``encode``, ``decode``, ``save``, ``load`` and the ``blank_id`` / ``vocab_size`` attributes.
"""
from __future__ import annotations

import json
import os
import unicodedata
from collections import Counter

TOKENIZER_FILE = "tokenizer.json"


def normalize_text(text: str) -> str:
    """Lower-case, NFKC, collapse whitespace: the form transcripts are trained and scored in."""
    return " ".join(unicodedata.normalize("NFKC", text).lower().split())


class CharTokenizer:
    """Characters with a CTC blank (id 0 unless imported) and ``word_delimiter`` standing for space."""

    kind = "char"

    def __init__(self, tokens: list[str], blank: str = "<blank>", unk: str = "<unk>", word_delimiter: str = "|",
                 lowercase: bool = True):
        if len(set(tokens)) != len(tokens):
            raise ValueError("tokenizer: duplicate tokens in the vocabulary")
        for special in (blank, unk):
            if special not in tokens:
                raise ValueError(f"tokenizer: the vocabulary lacks the special token {special!r}")
        self.tokens = list(tokens)
        self.blank, self.unk, self.word_delimiter, self.lowercase = blank, unk, word_delimiter, lowercase
        self.index = {t: i for i, t in enumerate(self.tokens)}
        self.blank_id = self.index[blank]
        self.unk_id = self.index[unk]
        # Tokens that never appear in a transcript (HF vocabularies carry <s>, </s> beside <pad>).
        self.special_ids = {i for i, t in enumerate(self.tokens) if len(t) > 1 and t.startswith("<") and t.endswith(">")}

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    @classmethod
    def build(cls, texts, min_count: int = 1) -> "CharTokenizer":
        """Build from an iterable of transcripts; characters seen fewer than ``min_count`` times map to <unk>."""
        counts = Counter()
        for text in texts:
            counts.update(normalize_text(text).replace(" ", "|"))
        chars = sorted(c for c, n in counts.items() if n >= min_count and c != "|")
        return cls(["<blank>", "<unk>", "|"] + chars)

    def encode(self, text: str) -> list[int]:
        """Text -> ids, ``(L,)``; spaces become the word delimiter, unknown characters <unk>."""
        text = normalize_text(text) if self.lowercase else " ".join(text.split())
        return [self.index.get(self.word_delimiter if c == " " else c, self.unk_id) for c in text]

    def decode(self, ids) -> str:
        """Ids (already collapsed for CTC) -> text; special tokens are dropped."""
        pieces = []
        for i in ids:
            i = int(i)
            if i in self.special_ids and i != self.unk_id:
                continue
            token = self.tokens[i]
            pieces.append(" " if token == self.word_delimiter else token)
        return " ".join("".join(pieces).split())

    def to_dict(self) -> dict:
        return {"kind": self.kind, "tokens": self.tokens, "blank": self.blank, "unk": self.unk,
                "word_delimiter": self.word_delimiter, "lowercase": self.lowercase}

    def save(self, directory: str) -> None:
        with open(os.path.join(directory, TOKENIZER_FILE), "w", encoding="utf-8") as handle:
            json.dump(self.to_dict(), handle, ensure_ascii=False, indent=1)

    @classmethod
    def from_dict(cls, data: dict) -> "CharTokenizer":
        return cls(data["tokens"], data["blank"], data["unk"], data["word_delimiter"], data.get("lowercase", True))

    @classmethod
    def from_hf_vocab(cls, vocab_file: str, tokenizer_config: dict | None = None) -> "CharTokenizer":
        """Import a ``Wav2Vec2CTCTokenizer`` vocabulary: its pad token is the CTC blank."""
        with open(vocab_file, encoding="utf-8") as handle:
            vocab = json.load(handle)
        if vocab and isinstance(next(iter(vocab.values())), dict):  # multilingual layout: {lang: vocab}
            vocab = next(iter(vocab.values()))
        config = tokenizer_config or {}
        tokens = [t for t, _ in sorted(vocab.items(), key=lambda item: item[1])]
        return cls(tokens, blank=config.get("pad_token", "<pad>"), unk=config.get("unk_token", "<unk>"),
                   word_delimiter=config.get("word_delimiter_token", "|"), lowercase=config.get("do_lower_case", False))


def load_tokenizer(directory: str) -> CharTokenizer:
    """Load the tokenizer saved in a model directory."""
    path = os.path.join(directory, TOKENIZER_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no tokenizer in the model directory; was it written by speechtext?")
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    if data.get("kind") != "char":
        raise ValueError(f"{path}: unknown tokenizer kind {data.get('kind')!r}")
    return CharTokenizer.from_dict(data)
