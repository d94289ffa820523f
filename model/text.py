"""Text normalisation shared by training and inference (no torch).

The model sees exactly what :func:`normalize` returns at training time, so the runtime
must call the same function. :func:`dedup_key` is the looser key used to find texts that
occur in both a training and a validation split.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

# t.co links carry no information the model can use, and each one tokenises to ~10
# word pieces of noise; news feeds carry other shorteners too, so all URLs go.
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_SPACE = re.compile(r"\s+")


def normalize(text: str) -> str:
    """Model input form: HTML entities decoded (``&amp;`` -> ``&``), URLs removed, spaces collapsed."""
    text = html.unescape(text)
    text = _URL.sub(" ", text)
    return _SPACE.sub(" ", text).strip()


def dedup_key(text: str) -> str:
    """Key under which two texts count as the same tweet: normalised and lowercased."""
    return normalize(text).lower()


def load_tokenizer(path: Path, max_length: int) -> Tokenizer:
    """A ``tokenizers`` tokenizer truncating at ``max_length``, padding left to :func:`pad_batch`.

    The shipped tokenizer.json pads every text to 128; batches are padded dynamically
    instead, to the longest text in the batch, which is what makes short tweets cheap.
    """
    tok = Tokenizer.from_file(str(path))
    tok.no_padding()
    tok.enable_truncation(max_length=max_length)
    return tok


def pad_batch(ids: Sequence[Sequence[int]], pad_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad token id lists to the longest: ``(input_ids, attention_mask)``, both int64."""
    width = max((len(x) for x in ids), default=1) or 1
    input_ids = np.full((len(ids), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(ids), width), dtype=np.int64)
    for i, row in enumerate(ids):
        input_ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return input_ids, mask
