"""Cashtag extraction and ticker normalisation."""

from __future__ import annotations

import pytest

from sentimon.ingest.cashtags import (
    MAX_TICKERS,
    find_cashtags,
    merge_tickers,
    normalize_ticker,
)


@pytest.mark.parametrize(("text", "expected"), [
    ("Summary featuring $AAPL $WYNN $GOOG $LGF #Options", ["AAPL", "WYNN", "GOOG", "LGF"]),
    ("$aapl and $AAPL again: $Aapl", ["AAPL"]),
    ("Buy $BRK.B and $BF-B now.", ["BRK.B", "BF-B"]),
    ("End of sentence $MSFT.", ["MSFT"]),
    ("$TSLA's deliveries; ($FB)", ["TSLA", "FB"]),
    ("paid $100 for 2 shares, $5.50 each", []),
    ("Donaremos U$D 25.000", []),
    ("$$ and $ alone", []),
    ("word$AAPL is not a tag", []),
    ("$TOOLONGX is not a ticker", []),
])
def test_find_cashtags(text: str, expected: list[str]) -> None:
    assert find_cashtags(text) == expected


@pytest.mark.parametrize(("symbol", "expected"), [
    ("aapl", "AAPL"), (" $msft ", "MSFT"), ("brk.b", "BRK.B"), ("7203", "7203"),
    ("", None), ("$", None), ("APPLE INC", None), ("-X", None), ("A" * 13, None),
])
def test_normalize_ticker(symbol: str, expected: str | None) -> None:
    assert normalize_ticker(symbol) == expected


def test_merge_is_sorted_and_deduplicated() -> None:
    assert merge_tickers(["MSFT", "AAPL"], "$goog up, $msft down") == ["AAPL", "GOOG", "MSFT"]
    assert merge_tickers([], "no tags") == []


def test_merge_is_capped() -> None:
    text = " ".join(f"$T{i:03d}" for i in range(200))
    out = merge_tickers([], text)
    assert len(out) == MAX_TICKERS and out == sorted(out)
