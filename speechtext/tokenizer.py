"""Tokenizers for recognition targets: characters (built from training text, or imported from a
Hugging Face ``vocab.json``) and pieces of words learned by byte-pair encoding over those characters.
Both share ``encode``, ``decode``, ``save``, ``load`` and the ``blank_id`` / ``vocab_size`` attributes,
and both spell a space as the word delimiter, so word boundaries (alignment, the LM's words, the
synthesis head's silences) read the same from either.
"""
from __future__ import annotations

import json
import os
import unicodedata
from collections import Counter

from .config import Config, ConfigError

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
        """Text -> ids, ``(L,)``: each word's units (:meth:`pieces`), words joined by the delimiter."""
        text = normalize_text(text) if self.lowercase else " ".join(text.split())
        ids = []
        for k, word in enumerate(text.split(" ") if text else []):
            if k:
                ids.append(self.index[self.word_delimiter])
            ids.extend(self._word_ids(word))
        return ids

    def _word_ids(self, word: str) -> list[int]:
        return [self.index.get(p, self.unk_id) for p in self.pieces(word)]

    def pieces(self, word: str) -> list[str]:
        """One word's units as strings: its characters (<unk> for those not in the vocabulary)."""
        return [c if c in self.index else self.unk for c in word]

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


class PieceTokenizer(CharTokenizer):
    """Byte-pair-encoded pieces of words (Sennrich et al. 2016): the characters, then ``merges`` learned
    from the training text, applied in the order learned. Pieces never cross a word: the delimiter
    stays a token of its own, and a word made of characters the merges never met is still spelled."""

    kind = "bpe"

    def __init__(self, tokens: list[str], merges: list[tuple[str, str]], **kwargs):
        super().__init__(tokens, **kwargs)
        self.merges = [tuple(m) for m in merges]
        self.rank = {m: i for i, m in enumerate(self.merges)}
        missing = [a + b for a, b in self.merges if a + b not in self.index]
        if missing:
            raise ValueError(f"tokenizer: merged pieces missing from the vocabulary: {missing[:5]}")
        self._cache: dict[str, list[int]] = {}

    @classmethod
    def build(cls, texts, merges: int = 0, min_count: int = 1, doubles: bool = False) -> "PieceTokenizer":
        """Characters of ``texts`` plus up to ``merges`` pieces, each the most frequent adjacent pair of
        the words' current pieces (ties to the pair first in sort order, so the result is reproducible);
        with ``doubles``, first every letter that the text doubles (``ee``, ``ll``) as a piece."""
        texts = [normalize_text(t) for t in texts]
        chars = CharTokenizer.build(texts, min_count)
        words = Counter(w for t in texts for w in t.split())
        spelled = {w: chars.pieces(w) for w in words}
        learned = sorted({(a, b) for p in spelled.values() for a, b in zip(p, p[1:])
                          if a == b and a.isalpha() and chars.unk != a}) if doubles else []
        for pair in learned:
            spelled = {w: _merge(p, pair) for w, p in spelled.items()}
        for _ in range(merges):
            pairs = Counter()
            for word, pieces in spelled.items():
                for pair in zip(pieces, pieces[1:]):
                    if chars.unk not in pair:
                        pairs[pair] += words[word]
            if not pairs:
                break
            best = min(pairs, key=lambda pair: (-pairs[pair], pair))
            learned.append(best)
            spelled = {w: _merge(p, best) for w, p in spelled.items()}
        pieces = list(dict.fromkeys(a + b for a, b in learned))
        return cls(chars.tokens + [p for p in pieces if p not in chars.index], learned)

    def _word_ids(self, word: str) -> list[int]:
        if word not in self._cache:  # merging is a loop per word; a corpus repeats its words
            self._cache[word] = super()._word_ids(word)
        return self._cache[word]

    def pieces(self, word: str) -> list[str]:
        """One word's pieces: its characters, merged pair by pair in the order the merges were learned."""
        pieces = super().pieces(word)
        while len(pieces) > 1:
            ranked = [self.rank.get(pair, len(self.rank)) for pair in zip(pieces, pieces[1:])]
            best = min(ranked)
            if best == len(self.rank):
                break
            pieces = _merge(pieces, self.merges[best])
        return pieces

    def to_dict(self) -> dict:
        return {**super().to_dict(), "merges": [list(m) for m in self.merges]}

    @classmethod
    def from_dict(cls, data: dict) -> "PieceTokenizer":
        return cls(data["tokens"], data["merges"], blank=data["blank"], unk=data["unk"],
                   word_delimiter=data["word_delimiter"], lowercase=data.get("lowercase", True))


def _merge(pieces: list[str], pair: tuple[str, str]) -> list[str]:
    """``pieces`` with every adjacent occurrence of ``pair`` joined, left to right."""
    out, i = [], 0
    while i < len(pieces):
        if i + 1 < len(pieces) and (pieces[i], pieces[i + 1]) == pair:
            out.append(pieces[i] + pieces[i + 1])
            i += 2
        else:
            out.append(pieces[i])
            i += 1
    return out


def make_tokenizer(config: Config, texts) -> CharTokenizer:
    """The tokenizer of a pretrained CTC checkpoint when there is one, else characters of the training
    text, with doubled letters (``model.double_letters``) and ``model.bpe_merges`` word pieces over them."""
    source = config.model.encoder.pretrained
    if source and os.path.isdir(source) and os.path.exists(os.path.join(source, "vocab.json")):
        if config.model.bpe_merges or config.model.double_letters:
            raise ConfigError(f"model.bpe_merges / double_letters: {source} brings its own CTC vocabulary "
                              "(vocab.json); set bpe_merges 0 and double_letters false to use it, or start "
                              "from an encoder without one")
        from .hf_import import read_hf_tokenizer

        return read_hf_tokenizer(source)
    if config.model.bpe_merges or config.model.double_letters:
        return PieceTokenizer.build(texts, config.model.bpe_merges, doubles=config.model.double_letters)
    return CharTokenizer.build(texts)


def tokenizer_from_dict(data: dict, where: str = "tokenizer") -> CharTokenizer:
    """A tokenizer from its ``to_dict`` form, of the kind it names."""
    kinds = {"char": CharTokenizer, "bpe": PieceTokenizer}
    if data.get("kind") not in kinds:
        raise ValueError(f"{where}: unknown tokenizer kind {data.get('kind')!r} (known: {', '.join(kinds)})")
    return kinds[data["kind"]].from_dict(data)


def load_tokenizer(directory: str) -> CharTokenizer:
    """Load the tokenizer saved in a model directory."""
    path = os.path.join(directory, TOKENIZER_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no tokenizer in the model directory; was it written by speechtext?")
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    return tokenizer_from_dict(data, path)
