"""Teacher logits for distillation: which texts, how they are stored, how a student reads them.

A large teacher (all-mpnet-base-v2, fine-tuned by ``sentimon train --base``) is run once over
the *distillation texts*; its logits are committed as a small file so that the student's
training (``sentimon train --distill FILE``) is reproducible without re-training the teacher.

Distillation texts:

* the labelled training rows of ``sentimon train`` (same seeded dev split, so dev and the
  validation splits get no soft targets);
* unlabelled MIT-licensed text: StockNet tweets with ``lang == "en"``, normalised like every
  model input, de-duplicated (lowercased key), minus any that occurs in a validation split,
  the dev split or the labelled training rows; a seeded sample of ``unlabelled`` of them.

The file (``.npz``, loadable with ``allow_pickle=False``) holds, per text, the first 8 bytes of
the sha256 of its normalised form (``hash``, uint64), both heads' logits in float16 (``topic``,
``sentiment``) and whether it is unlabelled (``unlabelled``); ``header`` is UTF-8 JSON with the
command, the teacher and its own dev/validation figures. Texts themselves are not stored: the
student rebuilds them from the data sets and joins on the hash.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sentimon.model.calibration import ece, softmax
from sentimon.model.data import Example, load_splits
from sentimon.model.labels import IGNORE_INDEX, SENTIMENTS, TOPICS
from sentimon.model.metrics import classification_report
from sentimon.model.text import dedup_key, normalize

FORMAT = "sentimon-teacher-logits/1"
STOCKNET_DIR = "stocknet_tweets"
STOCKNET_FILE = "stocknet_tweets.csv"
STOCKNET_SOURCE = (
    "StockNet tweets (Xu & Cohen 2018, github.com/yumoxu/stocknet-dataset, MIT): "
    f"{STOCKNET_DIR}/{STOCKNET_FILE}, lang == en, normalised, de-duplicated, none in a "
    "validation split, the dev split or the labelled training rows"
)


def text_hash(text: str) -> int:
    """First 8 bytes of sha256 of the (already normalised) text, as an unsigned int."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def stocknet_pool(data_dir: Path, exclude: set[str]) -> list[str]:
    """Every eligible StockNet text (normalised, English, unique, not in ``exclude`` keys)."""
    path = data_dir / STOCKNET_DIR / STOCKNET_FILE
    seen = set(exclude)
    out: list[str] = []
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["lang"] != "en":
                continue
            text = normalize(row["text"])
            key = text.lower()
            if text and key not in seen:
                seen.add(key)
                out.append(text)
    return out


@dataclass(frozen=True, slots=True)
class DistillTexts:
    """The labelled training rows and the unlabelled texts a teacher is run over."""

    labelled: list[Example]
    unlabelled: list[str]
    dev: list[Example]
    topic_valid: list[Example]
    sent_valid: list[Example]


def distill_texts(
    data_dir: Path,
    *,
    unlabelled: int = 10_000,
    seed: int = 13,
    dev_fraction: float = 0.05,
    limit: int | None = None,
) -> DistillTexts:
    """The texts of a teacher-logits file; ``seed``/``dev_fraction``/``limit`` as in training."""
    splits = load_splits(data_dir, dev_fraction=dev_fraction, seed=seed, limit=limit)
    exclude = {dedup_key(e.text) for e in (*splits.topic_valid, *splits.sent_valid,
                                           *splits.dev, *splits.train)}
    pool = stocknet_pool(data_dir, exclude)
    pick = sorted(random.Random(seed).sample(range(len(pool)), min(unlabelled, len(pool))))
    return DistillTexts(
        labelled=splits.train,
        unlabelled=[pool[i] for i in pick],
        dev=splits.dev,
        topic_valid=splits.topic_valid,
        sent_valid=splits.sent_valid,
    )


def write_logits(
    path: Path,
    *,
    texts: Sequence[str],
    unlabelled: Sequence[bool],
    topic: np.ndarray,
    sentiment: np.ndarray,
    header: dict[str, Any],
) -> int:
    """Write a teacher-logits file (see the module docstring); returns its size in bytes.

    Texts that occur twice (the two labelled sets share some headlines) are stored once.
    """
    hashes = np.array([text_hash(t) for t in texts], dtype=np.uint64)
    _, first = np.unique(hashes, return_index=True)
    keep = np.sort(first)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = {"format": FORMAT, **header, "rows": len(keep)}
    with path.open("wb") as fh:
        np.savez_compressed(
            fh,
            header=np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8),
            hash=hashes[keep],
            unlabelled=np.asarray(unlabelled, dtype=bool)[keep],
            topic=np.asarray(topic, dtype=np.float16)[keep],
            sentiment=np.asarray(sentiment, dtype=np.float16)[keep],
        )
    return path.stat().st_size


@dataclass(frozen=True, slots=True)
class TeacherLogits:
    """A loaded teacher-logits file, indexed by text hash."""

    header: dict[str, Any]
    index: dict[int, int]
    unlabelled: np.ndarray
    topic: np.ndarray
    sentiment: np.ndarray

    def lookup(self, text: str) -> int | None:
        """Row of a normalised text, or None when the teacher did not see it."""
        return self.index.get(text_hash(text))


def read_logits(path: Path) -> TeacherLogits:
    """Load a file written by :func:`write_logits` (no pickle)."""
    with np.load(path, allow_pickle=False) as z:
        header = json.loads(z["header"].tobytes().decode("utf-8"))
        if header.get("format") != FORMAT:
            raise ValueError(f"{path}: not a {FORMAT} file (format {header.get('format')!r})")
        hashes = z["hash"]
        return TeacherLogits(
            header=header,
            index={int(h): i for i, h in enumerate(hashes)},
            unlabelled=z["unlabelled"],
            topic=z["topic"].astype(np.float32),
            sentiment=z["sentiment"].astype(np.float32),
        )


@dataclass(frozen=True, slots=True)
class SoftTargets:
    """Training rows (labelled + unlabelled) with the teacher's logits aligned to them."""

    rows: list[Example]
    has_soft: np.ndarray  # bool per row
    topic: np.ndarray  # (rows, topics) float32, zero where has_soft is False
    sentiment: np.ndarray  # (rows, sentiments)
    stats: dict[str, int]


def soft_targets(
    path: Path, labelled: list[Example], data_dir: Path, *, exclude: Iterable[Example],
    limit: int | None = None,
) -> SoftTargets:
    """Join a teacher-logits file onto the labelled training rows and the unlabelled texts.

    Unlabelled texts are rebuilt from the StockNet pool (minus ``exclude``: dev and
    validation rows) and kept when their hash is in the file; they carry no hard label.
    ``limit`` caps them (tiny runs).
    """
    tl = read_logits(path)
    keys = {dedup_key(e.text) for e in (*exclude, *labelled)}
    unl_rows = [t for t in stocknet_pool(data_dir, keys) if tl.lookup(t) is not None]
    if limit is not None:
        unl_rows = unl_rows[:limit]
    rows = [*labelled, *(Example(t) for t in unl_rows)]
    has = np.zeros(len(rows), dtype=bool)
    topic = np.zeros((len(rows), len(TOPICS)), dtype=np.float32)
    sent = np.zeros((len(rows), len(SENTIMENTS)), dtype=np.float32)
    for i, e in enumerate(rows):
        j = tl.lookup(e.text)
        if j is not None:
            has[i] = True
            topic[i], sent[i] = tl.topic[j], tl.sentiment[j]
    stats = {
        "labelled_rows": len(labelled),
        "labelled_with_soft": int(has[: len(labelled)].sum()),
        "unlabelled_rows": len(unl_rows),
        "file_unlabelled_rows": int(tl.unlabelled.sum()),
    }
    return SoftTargets(rows=rows, has_soft=has, topic=topic, sentiment=sent, stats=stats)


def _figures(
    topic_logits: np.ndarray, sent_logits: np.ndarray, rows: Sequence[Example]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for head, logits, names in (("topic", topic_logits, TOPICS),
                                ("sentiment", sent_logits, SENTIMENTS)):
        y = np.array([getattr(r, head) for r in rows])
        keep = y != IGNORE_INDEX
        if not keep.any():
            continue
        rep = classification_report(y[keep], logits[keep].argmax(-1), names)
        out[head] = {
            "n": rep["n"],
            "accuracy": round(rep["accuracy"], 5),
            "macro_f1": round(rep["macro_f1"], 5),
            "ece": round(ece(softmax(logits[keep]), y[keep]), 5),
            "per_class": {k: {m: round(v[m], 4) for m in ("precision", "recall", "f1")}
                          for k, v in rep["per_class"].items()},
        }
    return out


def teacher_logits(
    model_dir: Path,
    out: Path,
    *,
    data_dir: Path,
    unlabelled: int = 10_000,
    max_length: int | None = None,
    batch_size: int = 64,
    threads: int = 0,
    command: str = "",
) -> dict[str, Any]:
    """Run a trained checkpoint (``OUT/model``) over the distillation texts; write ``out``.

    Also measures the teacher on the dev split and both validation splits (PyTorch, fp32),
    and puts those figures in the header. Seed, dev fraction and max length are the
    teacher's own training settings. Returns the header.
    """
    import torch

    from sentimon.model.network import META_FILE, TwoHeadModel
    from sentimon.model.text import load_tokenizer
    from sentimon.model.train import predict_logits

    if threads:
        torch.set_num_threads(threads)
    meta = json.loads((model_dir / META_FILE).read_text(encoding="utf-8"))
    cfg = meta.get("train_config", {})
    seed, fraction = int(cfg.get("seed", 13)), float(cfg.get("dev_fraction", 0.05))
    max_length = max_length or int(cfg.get("max_length", 64))
    texts = distill_texts(data_dir, unlabelled=unlabelled, seed=seed, dev_fraction=fraction,
                          limit=cfg.get("limit"))
    model = TwoHeadModel.load(model_dir)
    tok = load_tokenizer(model_dir / "tokenizer.json", max_length)
    device = torch.device("cpu")

    def run(strings: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        ids = [e.ids for e in tok.encode_batch(list(strings))]
        return predict_logits(model, ids, device, batch_size=batch_size)

    t0 = time.monotonic()
    figures = {}
    for split, rows in (("dev", texts.dev), ("topic_valid", texts.topic_valid),
                        ("sent_valid", texts.sent_valid)):
        t, s = run([r.text for r in rows])
        head = {"topic_valid": "topic", "sent_valid": "sentiment"}.get(split)
        got = _figures(t, s, rows)
        figures[split] = got if head is None else got[head]
    all_texts = [e.text for e in texts.labelled] + texts.unlabelled
    topic, sent = run(all_texts)
    seconds = time.monotonic() - t0
    header = {
        "command": command,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "teacher": {
            "model_dir": str(model_dir),
            "base": meta.get("base"),
            "epoch": meta.get("epoch"),
            "train_config": cfg,
            "figures": figures,
            "figures_note": "PyTorch fp32 on CPU; dev = train's seeded dev split; "
            "topic_valid/sent_valid = the validation splits (test sets, not tuned on)",
        },
        "texts": {
            "labelled": len(texts.labelled),
            "unlabelled": len(texts.unlabelled),
            "unlabelled_requested": unlabelled,
            "unlabelled_source": STOCKNET_SOURCE,
            "seed": seed,
            "dev_fraction": fraction,
            "max_length": max_length,
        },
        "heads": {"topic": list(TOPICS), "sentiment": list(SENTIMENTS)},
        "dtype": "float16",
        "hash": "sha256(normalised text)[:8] as big-endian uint64",
        "seconds": round(seconds, 1),
        "threads": torch.get_num_threads(),
    }
    unl = [False] * len(texts.labelled) + [True] * len(texts.unlabelled)
    size = write_logits(out, texts=all_texts, unlabelled=unl, topic=topic, sentiment=sent,
                        header=header)
    return {**header, "bytes": size}
