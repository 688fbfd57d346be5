"""Character vocabulary for CTC pretraining.

Why so small: the ASR stage only exists to teach the encoder speech structure; a
29-symbol alphabet (blank, space, apostrophe, A-Z) needs no tokenizer and keeps the
CTC head tiny. Index 0 is the CTC blank, as ``QualityModel.ctc_log_probs`` assumes.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

BLANK = 0
SPACE = 1
APOSTROPHE = 2

#: index -> symbol; index 0 is the blank (rendered as "" when decoding).
SYMBOLS: tuple[str, ...] = ("", " ", "'", *string.ascii_uppercase)
VOCAB_SIZE = len(SYMBOLS)  # 29, must match ModelConfig.vocab_size

_INDEX: dict[str, int] = {s: i for i, s in enumerate(SYMBOLS) if s}
_OUTSIDE = re.compile(r"[^A-Z' ]+")
_SPACES = re.compile(r" +")


def normalize(text: str) -> str:
    """Upper-case, keep A-Z, apostrophe and single spaces; anything else becomes a space.

    The ASR manifest is already normalised (digits spelled out) by ``train.asr_data``;
    this is the last line of defence so that :func:`encode` never meets an unknown symbol.
    """
    cleaned = _OUTSIDE.sub(" ", text.upper())
    return _SPACES.sub(" ", cleaned).strip()


def encode(text: str) -> list[int]:
    """Text -> label indices (1..28), after :func:`normalize`; never contains the blank."""
    return [_INDEX[c] for c in normalize(text)]


def decode(indices: Sequence[int]) -> str:
    """Label indices -> text; blanks are dropped (no CTC collapsing here, see metrics)."""
    return "".join(SYMBOLS[i] for i in indices if i != BLANK)
