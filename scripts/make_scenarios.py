"""Score the backtest scenario pools with the released model (MIT-licensed sets only).

    .venv/bin/python scripts/make_scenarios.py [--data ../shared/data] [--out scenarios]

Writes, deterministically for a given model release:

- ``scenarios/stocknet_scored.csv.gz``: every StockNet tweet (the baseline stream) with its
  original time, tickers, the identity of its text (``text_key``, a hash: no text), and the
  model's topic and raw sentiment logits;
- ``scenarios/bearish_scored.csv.gz``: every Bearish text of Twitter Financial News Sentiment
  (train + valid), the pool that ``sentimon backtest --inject`` draws negative bursts from,
  with text, topic and raw sentiment logits;
- ``scenarios/scored_by.json``: the model name, version and variant that scored them.

Raw logits rather than probabilities are kept so a later calibration (``calibration.json``
beside the model) applies without re-scoring. Each distinct normalised text is scored once.
Scoring all ~98,000 texts takes about 10 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]


def score(texts: list[str], *, batch: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, str]]:
    """(topic index, topic prob, sentiment logits) per text, each distinct text scored once."""
    from sentimon.model.calibration import softmax
    from sentimon.model.inference import SentimentModel
    from sentimon.model.text import normalize

    model = SentimentModel.load(device="cpu")
    keys = [normalize(t) for t in texts]
    unique = list(dict.fromkeys(keys))
    topic_idx = np.zeros(len(unique), dtype=np.int16)
    topic_prob = np.zeros(len(unique), dtype=np.float32)
    logits = np.zeros((len(unique), len(model.sentiments)), dtype=np.float32)
    for start in range(0, len(unique), batch):
        chunk = unique[start:start + batch]
        t, s = model.logits(chunk, batch_size=64)
        p = softmax(t, model.temperatures["topic"])
        topic_idx[start:start + len(chunk)] = p.argmax(axis=1)
        topic_prob[start:start + len(chunk)] = p.max(axis=1)
        logits[start:start + len(chunk)] = s
        print(f"\rscored {min(start + batch, len(unique))}/{len(unique)} distinct texts",
              end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    where = {k: i for i, k in enumerate(unique)}
    rows = np.array([where[k] for k in keys])
    # Logits in the model's sentiment order, reordered to negative, neutral, positive.
    order = [model.sentiments.index(s) for s in ("negative", "neutral", "positive")]
    meta = {"model": model.name, "version": model.version, "variant": model.variant,
            "topics": json.dumps(list(model.topics))}
    return topic_idx[rows], topic_prob[rows], logits[rows][:, order], meta


def main() -> None:
    from sentimon.monitor.records import text_key

    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data",
                    help="the shared data folder (default: ../shared/data beside the repo)")
    ap.add_argument("--out", type=Path, default=REPO / "scenarios", help="output folder")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    tweets = pd.read_csv(args.data / "stocknet_tweets" / "stocknet_tweets.csv",
                         dtype={"tweet_id": str}, keep_default_na=False)
    sent = pd.concat([
        pd.read_csv(args.data / "twitter_fin_sentiment" / "sent_train.csv"),
        pd.read_csv(args.data / "twitter_fin_sentiment" / "sent_valid.csv"),
    ], ignore_index=True)
    bearish = sent[sent.label == 0].reset_index(drop=True)  # 0 = Bearish in this set

    texts = tweets.text.astype(str).tolist() + bearish.text.astype(str).tolist()
    topic_idx, topic_prob, logits, meta = score(texts)
    topics = json.loads(meta.pop("topics"))
    n = len(tweets)

    def frame(rows: slice) -> pd.DataFrame:
        return pd.DataFrame({
            "topic": [topics[i] for i in topic_idx[rows]],
            "topic_prob": topic_prob[rows].round(4),
            "logit_negative": logits[rows, 0].round(4),
            "logit_neutral": logits[rows, 1].round(4),
            "logit_positive": logits[rows, 2].round(4),
        })

    stock = pd.concat([tweets[["ts", "tweet_id", "tickers", "lang", "is_retweet"]]
                       .reset_index(drop=True), frame(slice(0, n))], axis=1)
    # No text (Twitter content), but its identity: copies count once in the evidence.
    stock.insert(5, "text_key", [text_key(t) for t in tweets.text.astype(str)])
    stock.to_csv(args.out / "stocknet_scored.csv.gz", index=False)
    bear = pd.concat([
        pd.DataFrame({"id": [f"tfns-neg-{i}" for i in bearish.index], "text": bearish.text}),
        frame(slice(n, None)),
    ], axis=1)
    bear.to_csv(args.out / "bearish_scored.csv.gz", index=False)
    (args.out / "scored_by.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"stocknet {len(stock)}, bearish {len(bear)} -> {args.out} ({meta})")


if __name__ == "__main__":
    main()
