"""Cashtags (``$AAPL``) in free text, and the normal form of ticker symbols.

Tickers are normalised to upper case, de-duplicated and **sorted**, so that the same
message always yields the same list whatever order the symbols appear in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# A cashtag is `$` + a letter + up to 5 more letters/digits, optionally a share-class
# suffix (`$BRK.B`, `$BF-B`). The `$` must not follow a word character or another `$`, so
# "U$D" and "$$" are not tags; a digit first ("$100") is money, not a ticker.
_CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z][A-Za-z0-9]{0,5}(?:[.\-][A-Za-z]{1,2})?)(?!\w)")

# What a normalised symbol may look like (also the pattern in scored.schema.json).
TICKER_PATTERN = r"^[A-Z0-9][A-Z0-9.\-]{0,11}$"
_TICKER = re.compile(TICKER_PATTERN)

MAX_TICKERS = 64
"""Symbols kept per record: a spam text with hundreds of cashtags must not bloat the output."""


def find_cashtags(text: str) -> list[str]:
    """Upper-cased symbols of the cashtags in ``text``, in order of first appearance."""
    return list(dict.fromkeys(m.group(1).upper() for m in _CASHTAG.finditer(text)))


def normalize_ticker(symbol: str) -> str | None:
    """``" $aapl "`` -> ``"AAPL"``; None when the result is not a plausible symbol."""
    s = symbol.strip().removeprefix("$").strip().upper()
    return s if _TICKER.match(s) else None


def merge_tickers(given: Iterable[str], text: str) -> list[str]:
    """Sorted, de-duplicated union of normalised ``given`` symbols and cashtags in ``text``."""
    return sorted(set(given) | set(find_cashtags(text)))[:MAX_TICKERS]
