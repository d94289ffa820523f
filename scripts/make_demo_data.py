"""Cut the demo's committed data slice from ../shared/data (MIT-licensed sets only).

    .venv/bin/python scripts/make_demo_data.py [--data ../shared/data]

Writes deploy/demo/comments.csv (StockNet tweets, English, 2015-10-01..2015-11-14),
deploy/demo/news.csv (Twitter Financial News Topic texts, no timestamps: replayed at a rate)
and deploy/demo/negative.csv (Bearish texts of Twitter Financial News Sentiment, the pool
that `sentimon replay --inject` draws a negative burst from). Deterministic.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=REPO / "deploy" / "demo")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    tweets = pd.read_csv(args.data / "stocknet_tweets" / "stocknet_tweets.csv", dtype={"tweet_id": str})
    tweets = tweets[(tweets.lang == "en") & (tweets.ts >= "2015-10-01") & (tweets.ts < "2015-11-15")]
    tweets[["ts", "tweet_id", "tickers", "lang", "text"]].to_csv(args.out / "comments.csv", index=False)

    topic = pd.read_csv(args.data / "twitter_fin_topic" / "topic_train.csv")
    news = topic.sample(n=3000, random_state=7)[["text"]].reset_index(drop=True)
    news.insert(0, "id", [f"tfnt-{i}" for i in news.index])
    news.insert(1, "source", "twitter-financial-news")
    news.to_csv(args.out / "news.csv", index=False)

    sent = pd.concat([
        pd.read_csv(args.data / "twitter_fin_sentiment" / "sent_train.csv"),
        pd.read_csv(args.data / "twitter_fin_sentiment" / "sent_valid.csv"),
    ])
    bearish = sent[sent.label == 0][["text"]].reset_index(drop=True)  # 0 = Bearish in this set
    bearish.insert(0, "id", [f"tfns-neg-{i}" for i in bearish.index])
    bearish.insert(1, "source", "twitter-financial-news")
    bearish.to_csv(args.out / "negative.csv", index=False)
    print(f"comments {len(tweets)}, news {len(news)}, negative {len(bearish)} -> {args.out}")


if __name__ == "__main__":
    main()
