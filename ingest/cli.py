"""Subcommands of ``sentimon.ingest``: ``score`` (the scorer daemon)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sentimon.config import ConfigError, Settings

SCORE_EPILOG = """\
examples:
  sentimon score                               run with the configured device and topics
  sentimon score --device cpu --max-batch 64   force CPU, smaller batches
  sentimon score --group-id scorer-b --topics sentimon.news
  sentimon score --once                        score what is in the topics, then exit
  sentimon score --max-records 10000           benchmark: exit after 10,000 records
  SENTIMON_SCORER__METRICS_PORT=19110 sentimon score   a second process in the same group

Run as many processes as there are partitions: one consumer group splits them. Each input
record becomes one record on the scored topic or, if it cannot be used, one dead letter
with its reason. Offsets are committed only after the broker acknowledged the output
(at-least-once; a crash repeats records under the same id). SIGTERM or Ctrl-C finishes
the batch in hand, commits and leaves the group. Metrics, /healthz and /readyz are served
on scorer.metrics_host:metrics_port (default 127.0.0.1:19100). See docs/scorer.md.
"""


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add this package's subcommands (one line per subcommand)."""
    _add_score(sub)
    _add_replay(sub)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _add_score(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser(
        "score",
        help="scorer daemon: Kafka input topics -> ONNX model -> sentimon.scored",
        description="Consume news and comments, score them in micro-batches with the "
        "ONNX model (GPU or CPU) and produce one scored record per input.",
        epilog=SCORE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--device", choices=["auto", "cuda", "cpu"],
                   help="execution provider; auto = CUDA when available (model.device)")
    p.add_argument("--max-batch", type=_positive_int, metavar="N",
                   help="max records per model run (scorer.max_batch)")
    p.add_argument("--max-batch-tokens", type=_positive_int, metavar="N",
                   help="max tokens per model run (scorer.max_batch_tokens)")
    p.add_argument("--max-wait-ms", type=_non_negative_int, metavar="MS",
                   help="max wait to fill a batch (scorer.max_wait_ms)")
    p.add_argument("--group-id", metavar="ID", help="consumer group (scorer.group_id)")
    p.add_argument("--topics", metavar="T1,T2",
                   help="input topics, comma-separated (default topics.news,topics.comments)")
    stop = p.add_argument_group("stopping (tests and benchmarks)")
    stop.add_argument("--once", action="store_true",
                      help="exit once every assigned partition is drained (lag 0)")
    stop.add_argument("--max-records", type=_positive_int, metavar="N",
                      help="exit after N records are scored or dead-lettered")
    stop.add_argument("--idle-exit-s", type=float, metavar="S",
                      help="exit after S seconds without a new record")
    p.set_defaults(func=run_score)


def run_score(args: argparse.Namespace, settings: Settings) -> int:
    """``sentimon score``: load the model, then consume until stopped."""
    import logging
    import sys

    from kafka.errors import KafkaError

    from sentimon.ingest.scorer import Scorer
    from sentimon.kafka import GracefulStop
    from sentimon.model.inference import SentimentModel

    log = logging.getLogger("sentimon.ingest.score")
    settings = with_score_args(settings, args)
    log.info("loading model", extra={"device": settings.model.device,
                                     "variant": settings.model.variant})
    try:
        model = SentimentModel.from_settings(settings)
    except (OSError, ValueError, RuntimeError) as exc:  # missing files, no CUDA, bad variant
        raise ConfigError(f"cannot load the model: {exc}") from exc
    # The providers the session really runs on: a CUDA request can end up on CPU.
    providers = model.session_providers or (model.provider,)
    log.info("model loaded", extra={"model": f"{model.name}@{model.version}",
                                    "provider": providers[0], "providers": ",".join(providers),
                                    "requested": model.provider, "variant": model.variant})
    topics = [t.strip() for t in args.topics.split(",") if t.strip()] if args.topics else None
    stop = GracefulStop.install()  # after the model load, which a signal may still interrupt
    scorer = Scorer(settings, model, topics=topics, stop=stop, max_records=args.max_records,
                    idle_exit_s=args.idle_exit_s, once=args.once)
    try:
        return scorer.run()
    except KafkaError as exc:
        print(f"sentimon score: Kafka at {settings.kafka.bootstrap_servers} failed: {exc!r}",
              file=sys.stderr)
        return 1


def with_score_args(settings: Settings, args: argparse.Namespace) -> Settings:
    """``settings`` with the command-line overrides of ``sentimon score`` applied."""
    from sentimon.cli import with_options

    # Checked by the settings model: a bad flag is a one-line error naming it.
    settings = with_options(settings, "scorer", max_batch=args.max_batch,
                            max_batch_tokens=args.max_batch_tokens,
                            max_wait_ms=args.max_wait_ms, group_id=args.group_id)
    return with_options(settings, "model", device=args.device or None)


REPLAY_EPILOG = """\
examples:
  sentimon replay deploy/demo/comments.csv --speedup 20000 --retime
  sentimon replay ../shared/data/stocknet_tweets/stocknet_tweets.csv --lang en --rate 200
  sentimon replay ../shared/data/news_headlines_2017_2020/headlines_normalized.csv --kind news
  sentimon replay deploy/demo/news.csv --rate 20 --retime --inject Earnings --inject-after 60

CSV files need a text column (text, Headlines, title); ts/Time, id/tweet_id, tickers
(semicolon-separated), lang, source and description (news lead) are used when present.
JSONL files hold one input message per line. --retime moves event times to now, as a live
stream; without it the original timestamps are sent. --inject adds a burst of real
Bearish-labelled texts that the released model assigns to the given topic.
"""


def _add_replay(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser(
        "replay",
        help="stream a CSV/JSONL data set into the input topics, paced, with optional burst",
        description="Replay a data set into Kafka as sentimon input messages.",
        epilog=REPLAY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", type=Path, help="CSV or JSONL file")
    p.add_argument("--kind", choices=["news", "comment"],
                   help="message kind; default guessed from the file name (news/headline -> news)")
    p.add_argument("--topic", help="target topic (default topics.news or topics.comments by kind)")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--speedup", type=float, metavar="X",
                      help="replay X times faster than the file's own timestamps")
    pace.add_argument("--rate", type=float, metavar="N", help="send N messages per second")
    p.add_argument("--retime", action="store_true", help="rewrite event times to now (live stream)")
    p.add_argument("--limit", type=_positive_int, metavar="N", help="send only the first N rows")
    p.add_argument("--lang", metavar="CODE", help="keep rows whose lang column equals CODE (e.g. en)")
    inj = p.add_argument_group("negative burst")
    inj.add_argument("--inject", metavar="TOPIC",
                     help="add a burst of real negative texts that the model puts in TOPIC "
                     "(a model topic name, e.g. Earnings; default: no burst)")
    inj.add_argument("--inject-count", type=_positive_int, default=150, metavar="N",
                     help="texts in the burst (default 150; repeated when the pool has fewer)")
    inj.add_argument("--inject-after", type=float, default=0.0, metavar="S",
                     help="seconds into the replay at which the burst starts (default 0)")
    inj.add_argument("--inject-rate", type=float, default=10.0, metavar="N",
                     help="burst messages per second (default 10)")
    inj.add_argument("--inject-pool", type=Path, metavar="FILE",
                     help="Bearish-labelled texts to draw from (default deploy/demo/negative.csv)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (it is shown only on a terminal anyway)")
    p.set_defaults(func=run_replay)


def run_replay(args: argparse.Namespace, settings: Settings) -> int:
    """``sentimon replay``: load, schedule, optionally inject, produce."""
    import sys
    from importlib.resources import files

    from sentimon.ingest import replay
    from sentimon.kafka import GracefulStop, make_producer

    kind = args.kind or ("news" if any(w in args.file.name.lower() for w in ("news", "headline"))
                         else "comment")
    topic = args.topic or (settings.topics.news if kind == "news" else settings.topics.comments)
    try:
        items = replay.load_items(args.file, kind=kind, lang=args.lang, limit=args.limit)
        offsets = replay.Schedule(speedup=args.speedup, rate=args.rate).offsets(items)
        if args.inject:
            from sentimon.model.inference import SentimentModel

            pool = args.inject_pool or Path(str(files("sentimon.deploy").joinpath("demo", "negative.csv")))
            burst = replay.burst_items(pool, topic=args.inject, count=args.inject_count,
                                       model=SentimentModel.from_settings(settings), kind=kind)
            items, offsets = replay.merge_burst(items, offsets, burst, after_s=args.inject_after,
                                                rate=args.inject_rate)
    except replay.ReplayError as exc:
        print(f"sentimon replay: {exc}", file=sys.stderr)
        return 2
    producer = make_producer(settings.kafka, client_suffix="replay")
    try:
        acked = replay.send(producer, topic, items, offsets, retime=args.retime,
                            progress=not args.no_progress and sys.stderr.isatty(),
                            stop=GracefulStop.install())
    finally:
        producer.close()
    print(f"replayed {acked} of {len(items)} messages to {topic}")
    return 0 if acked == len(items) else 1
