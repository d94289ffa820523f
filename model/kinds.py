"""Text kind: ``"tweet"`` (Twitter-native chatter and markup) or ``"headline"`` (news style).

The card reports accuracy by kind so that a gain on one style cannot hide a loss on the
other (issue #12). sentimon scores two kinds of stream: comments (StockNet tweets: cashtags,
hashtags, mentions, first-person chatter) and news (CNBC / Guardian headlines: plain
sentences). Both validation splits mix the two, so each text is put in the kind whose
surface it resembles, by rules on the text alone (no model, deterministic, no state):

A text is a **tweet** when it carries any of

- a ``$cashtag`` (``$AAPL``, ``$BRK.B``; ``$5``, ``$1.6bn`` are amounts, not tags),
- a ``#hashtag``,
- an ``@mention`` other than a news attribution (``via @AP``, ``(via @climate)``,
  ``- @FitchRatings`` at the end),
- a retweet marker (``RT`` before a mention or at the start),
- an emoji or pictograph,
- first-person chatter outside quotation marks: ``I`` followed by a lowercase word, ``I'm``,
  ``I've``, ``I'll``, ``I'd``, ``my``, ``me``, ``mine``, ``myself``, ``lol``, ``imo``, ``imho``
  (``Series I bonds``, ``Phase I``, ``World War I`` are not first person),

and a **headline** otherwise. URLs and HTML entities are ignored: news accounts post every
headline with a link, so a link says nothing about the style (:func:`text_kind` removes them
with :func:`~sentimon.model.text.normalize`, so raw and normalised texts get the same kind).

Known limits: news bots that prefix a headline with tickers or append hashtags
(``$TSM - Taiwan Semiconductor ... Results. #economy``) count as tweets, since their surface
is Twitter markup; plain-text chatter without any marker (``buy the dip``) counts as a
headline; a headline with "my"/"me" in a title (``My Top 5 Dividend Picks``) or an
unquoted first-person quote counts as a tweet. English only.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Literal

from sentimon.model.text import normalize

Kind = Literal["tweet", "headline"]
KINDS: tuple[Kind, ...] = ("tweet", "headline")

# A ticker starts with a letter; amounts ($5, $1.6bn) start with a digit. Not preceded by a
# word character or $ so "US$" or "$$" do not count.
_CASHTAG = re.compile(r"(?<![\w$])\$[A-Za-z][A-Za-z]{0,5}(?:[._][A-Za-z]{1,2})?\b")
# "#1 seller" is a rank, not a tag: a hashtag needs a letter. "&#39;" entities are decoded
# by normalize() before this runs.
_HASHTAG = re.compile(r"(?<![\w&#])#[A-Za-z_]\w*")
# News accounts credit a source: "(via @climate)", "via @AP", "... - @FitchRatings" at the end.
_ATTRIBUTION = re.compile(
    r"\(?\b(?:via|h/t|by|from)\s+@\w+\)?|[-\u2013\u2014|]\s*@\w+\s*$", re.IGNORECASE
)
_MENTION = re.compile(r"(?<![\w@])@\w+")
_RETWEET = re.compile(r"^RT\b|\bRT\s+@")
# Emoji and pictographs (emoticons, symbols, transport, supplemental symbols, dingbats,
# arrows like U+23E9). Currency, math and CJK are not in these ranges.
_EMOJI = re.compile(
    "[\U0001F000-\U0001FAFF\u2600-\u27BF\u2B00-\u2BFF\u23E9-\u23FA\u2190-\u21FF\uFE0F]"
)
# Quoted speech in a headline ("'I have a great deal of respect', Cipollone says") is not the
# poster's own voice, so quoted spans are removed before the first-person check.
_QUOTED = re.compile(r"\u201c[^\u201d]*\u201d|\"[^\"]*\"|\u2018[^\u2019]*\u2019(?!\w)")
_FIRST_PERSON = re.compile(
    r"\b(?:I'm|I\u2019m|I've|I\u2019ve|I'll|I\u2019ll|I'd|I\u2019d|my|me|mine|myself|lol|lmao|"
    r"imo|imho)\b",
    re.IGNORECASE,
)
# "I think", "I bought" but not "Series I bonds", "Phase I trial", "O-I Glass", "World War I".
_I_VERB = re.compile(
    r"(?<![-\w.'])(?<!Series )(?<!Phase )(?<!Class )(?<!Tier )(?<!War )(?<!Title )I (?=[a-z])"
)


def markers(text: str) -> list[str]:
    """Names of the tweet markers found in ``text`` (empty for a headline), for inspection."""
    text = normalize(text)
    found = []
    if _CASHTAG.search(text):
        found.append("cashtag")
    if _HASHTAG.search(text):
        found.append("hashtag")
    if _RETWEET.search(text):
        found.append("retweet")
    if _MENTION.search(_ATTRIBUTION.sub(" ", text)):
        found.append("mention")
    if _EMOJI.search(text):
        found.append("emoji")
    unquoted = _QUOTED.sub(" ", text)
    if _FIRST_PERSON.search(unquoted) or _I_VERB.search(unquoted):
        found.append("first_person")
    return found


def text_kind(text: str) -> Kind:
    """``"tweet"`` if ``text`` carries a Twitter marker (see the module doc), else ``"headline"``."""
    return "tweet" if markers(text) else "headline"


def kind_counts(texts: Iterable[str]) -> dict[str, int]:
    """Texts per kind, both kinds always present (``{"tweet": n, "headline": m}``)."""
    counts = Counter(text_kind(t) for t in texts)
    return {k: counts.get(k, 0) for k in KINDS}
