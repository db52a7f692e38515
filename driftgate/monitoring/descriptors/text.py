"""Per-row descriptors of free text, to monitor like numeric features (pure: standard library + numpy).

Definitions (one value per text; `None` counts as the empty string):

- `length_chars`: the number of Unicode code points, `len(text)`.
- `length_tokens`: the number of tokens. A token is a maximal run of word characters (regex `\\w+`,
  Unicode-aware) in the lower-cased text, so punctuation and spaces never count.
- `empty`: 1.0 when the text holds no non-whitespace character, else 0.0 (its mean is the empty rate).
- `unseen_token_share`: the share of the text's tokens (with repeats) that are not in the reference
  vocabulary; NaN for a text without tokens (undefined, like a missing value).
- `non_ascii_share`: the share of code points above U+007F; NaN for a zero-length text.

The vocabulary holds the `max_size` most frequent reference tokens (ties broken alphabetically, so
the same reference always gives the same vocabulary); a token outside it counts as unseen even when
the reference had it once, which bounds memory on a large reference. Fit the vocabulary on other
reference texts than those whose descriptors serve as the reference distribution (e.g. the training
texts, or one half of the reference): on its own texts the unseen share is 0 by construction, and
every current window would then look new.

>>> describer = TextDescriber.fit(["the cat sat", "the dog"])
>>> row = describer.describe(["The cat ran!", "  ", "café"])
>>> [round(float(v), 3) for v in row["unseen_token_share"]]
[0.333, nan, 1.0]
>>> row["empty"].tolist(), row["length_tokens"].tolist()
([0.0, 1.0, 0.0], [3.0, 0.0, 1.0])
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

TOKEN = re.compile(r"\w+")
DEFAULT_VOCABULARY_SIZE = 50_000  # enough for a domain's working vocabulary; ~5 MB of Python strings
TEXT_DESCRIPTORS = ("length_chars", "length_tokens", "empty", "unseen_token_share", "non_ascii_share")


def tokenize(text: str | None) -> list[str]:
    """The text's tokens: runs of word characters of the lower-cased text."""
    return TOKEN.findall(text.lower()) if text else []


@dataclass(frozen=True)
class TextDescriber:
    """The reference vocabulary, and the descriptors of texts against it."""

    vocabulary: frozenset[str]

    @classmethod
    def fit(cls, reference: Iterable[str | None], max_size: int = DEFAULT_VOCABULARY_SIZE) -> TextDescriber:
        if max_size < 1:
            raise ValueError(f"max_size must be >= 1. Got {max_size} instead.")
        counts: Counter[str] = Counter()
        for text in reference:
            counts.update(tokenize(text))
        # most frequent first, then alphabetical: deterministic whatever the reference's order
        kept = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:max_size]
        return cls(frozenset(token for token, _ in kept))

    def describe(self, texts: Sequence[str | None]) -> dict[str, np.ndarray]:
        """The five descriptors of each text, as float64 arrays of len(texts)."""
        strings = ["" if t is None else str(t) for t in texts]
        chars = np.fromiter((len(s) for s in strings), dtype=np.float64, count=len(strings))
        # len(s) - len(ascii part): counts non-ASCII code points in C, not in a Python loop
        non_ascii = np.fromiter(
            (len(s) - len(s.encode("ascii", "ignore")) for s in strings), dtype=np.float64, count=len(strings)
        )
        empty = np.fromiter((not s.strip() for s in strings), dtype=np.float64, count=len(strings))
        tokens = [tokenize(s) for s in strings]
        n_tokens = np.fromiter((len(t) for t in tokens), dtype=np.float64, count=len(strings))
        vocabulary = self.vocabulary
        unseen = np.fromiter(
            (sum(1 for token in t if token not in vocabulary) for t in tokens), dtype=np.float64, count=len(strings)
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            unseen_share = np.where(n_tokens > 0, unseen / n_tokens, np.nan)
            non_ascii_share = np.where(chars > 0, non_ascii / chars, np.nan)
        return {
            "length_chars": chars,
            "length_tokens": n_tokens,
            "empty": empty,
            "unseen_token_share": unseen_share,
            "non_ascii_share": non_ascii_share,
        }

    def to_dict(self) -> dict[str, Any]:
        return {"vocabulary": sorted(self.vocabulary)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TextDescriber:
        return cls(frozenset(str(token) for token in data["vocabulary"]))
