"""Distillation: the teacher-logits file, the distillation texts, and a tiny teacher -> student run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sentimon.model.data import default_data_dir
from sentimon.model.distill import (
    distill_texts,
    read_logits,
    soft_targets,
    text_hash,
    write_logits,
)
from sentimon.model.labels import IGNORE_INDEX
from sentimon.model.text import dedup_key, normalize

DATA = default_data_dir()
needs_data = pytest.mark.skipif(
    not (DATA / "stocknet_tweets").is_dir() or not (DATA / "twitter_fin_topic").is_dir(),
    reason="data sets not found",
)


def test_logits_file_roundtrip_dedups_and_rejects_other_files(tmp_path):
    texts = ["a tweet", "another one", "a tweet"]  # a repeated text is stored once
    topic = np.arange(3 * 20, dtype=np.float32).reshape(3, 20) / 7
    sent = np.array([[1.5, -2.25, 0.125], [3, 2, 1], [9, 9, 9]], dtype=np.float32)
    path = tmp_path / "t.npz"
    write_logits(path, texts=texts, unlabelled=[False, True, False], topic=topic,
                 sentiment=sent, header={"command": "test"})
    tl = read_logits(path)
    assert tl.header["command"] == "test" and tl.header["rows"] == 2
    i, j = tl.lookup("a tweet"), tl.lookup("another one")
    assert i is not None and j is not None and tl.lookup("unseen") is None
    assert tl.sentiment[i].tolist() == [1.5, -2.25, 0.125]  # exact in float16
    np.testing.assert_allclose(tl.topic[j], topic[1], rtol=1e-3)
    assert tl.unlabelled.tolist() == [False, True]
    assert text_hash("a tweet") != text_hash("A tweet")  # the exact normalised text
    np.savez(tmp_path / "other.npz", header=np.frombuffer(b'{"format": "x"}', dtype=np.uint8))
    with pytest.raises(ValueError, match="not a sentimon-teacher-logits"):
        read_logits(tmp_path / "other.npz")


@needs_data
def test_distill_texts_are_english_unique_and_not_in_any_test_or_dev_split():
    texts = distill_texts(DATA, unlabelled=500, seed=13)
    assert len(texts.unlabelled) == 500
    keys = [t.lower() for t in texts.unlabelled]
    assert len(set(keys)) == len(keys)
    held_out = {dedup_key(e.text) for e in (*texts.topic_valid, *texts.sent_valid, *texts.dev)}
    labelled = {dedup_key(e.text) for e in texts.labelled}
    assert not set(keys) & held_out and not set(keys) & labelled
    assert all(normalize(t) == t and "t.co/" not in t for t in texts.unlabelled)
    # Seeded: the same call picks the same texts.
    assert distill_texts(DATA, unlabelled=500, seed=13).unlabelled == texts.unlabelled


@pytest.mark.training
def test_distill_loss_is_a_scaled_kl():
    torch = pytest.importorskip("torch")
    from sentimon.model.train import distill_loss

    t = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    assert float(distill_loss(t, t, 2.0)) == pytest.approx(0.0, abs=1e-6)
    s = torch.tensor([[0.0, 0.0, 0.0], [1.0, -1.0, 0.0]])
    p = torch.softmax(t / 2, -1)
    q = torch.log_softmax(s / 2, -1)
    want = float((p * (p.log() - q)).sum(-1).mean() * 4)
    assert float(distill_loss(s, t, 2.0)) == pytest.approx(want, rel=1e-5)


@pytest.mark.training
@needs_data
def test_tiny_teacher_logits_then_student(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from sentimon.model.distill import teacher_logits
    from sentimon.model.train import TrainConfig, train

    def cfg(out: Path, **kw):
        return TrainConfig(out=str(out), limit=60, epochs=1, batch_size=16, max_length=32,
                           save_every=0, threads=1, max_steps=3, **kw)

    teacher = train(cfg(tmp_path / "teacher"), progress=False)
    path = tmp_path / "distill" / "teacher_logits.npz"
    header = teacher_logits(teacher, path, data_dir=DATA, unlabelled=40, threads=1,
                            command="sentimon teacher-logits (test)")
    tl = read_logits(path)
    assert header["texts"]["unlabelled"] == 40 and header["texts"]["max_length"] == 32
    assert tl.header["command"] == "sentimon teacher-logits (test)"
    figs = tl.header["teacher"]["figures"]
    assert {"topic", "sentiment"} <= set(figs["dev"])
    assert figs["sent_valid"]["n"] == 60 and 0.0 <= figs["sent_valid"]["ece"] <= 1.0
    assert int(tl.unlabelled.sum()) == 40
    assert np.isfinite(tl.topic).all() and np.isfinite(tl.sentiment).all()

    # The student side rebuilds the same texts from the data and joins on the hash.
    texts = distill_texts(DATA, unlabelled=40, seed=13, limit=60)
    st = soft_targets(path, texts.labelled, DATA,
                      exclude=[*texts.dev, *texts.topic_valid, *texts.sent_valid])
    assert st.stats["labelled_with_soft"] == len(texts.labelled)
    assert st.stats["unlabelled_rows"] == 40 and st.has_soft.all()
    for e in st.rows[len(texts.labelled):]:
        assert e.topic == IGNORE_INDEX and e.sentiment == IGNORE_INDEX

    out = tmp_path / "student"
    train(cfg(out, distill=str(path), distill_weight=0.7), progress=False)
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["distill_stats"]["unlabelled_rows"] == 40
    assert summary["history"] and np.isfinite(summary["history"][0]["dev_score"])
    meta = json.loads((out / "model" / "sentimon_model.json").read_text())
    assert meta["train_config"]["distill"] == str(path)
    assert meta["train_config"]["distill_weight"] == 0.7


COMMITTED = Path(__file__).resolve().parents[1] / "model" / "distill" / "teacher_logits.npz"


@needs_data
@pytest.mark.skipif(not COMMITTED.exists(), reason="no committed teacher logits")
def test_committed_teacher_logits_cover_every_rebuilt_text():
    """The student's training is reproducible from the committed file and ../shared/data."""
    tl = read_logits(COMMITTED)
    texts = tl.header["texts"]
    rebuilt = distill_texts(DATA, unlabelled=texts["unlabelled"], seed=texts["seed"],
                            dev_fraction=texts["dev_fraction"])
    assert len(rebuilt.unlabelled) == texts["unlabelled"] == int(tl.unlabelled.sum())
    missing = [e.text for e in rebuilt.labelled if tl.lookup(e.text) is None]
    missing += [t for t in rebuilt.unlabelled if tl.lookup(t) is None]
    assert not missing, missing[:5]
    # No dev or validation text has a soft target: they stay untouched test sets.
    held_out = [*rebuilt.dev, *rebuilt.topic_valid, *rebuilt.sent_valid]
    labelled = {text_hash(e.text) for e in rebuilt.labelled}
    leaked = [e.text for e in held_out
              if tl.lookup(e.text) is not None and text_hash(e.text) not in labelled]
    assert not leaked, leaked[:5]
    figures = tl.header["teacher"]["figures"]
    assert figures["sent_valid"]["accuracy"] > 0.8 and figures["topic_valid"]["accuracy"] > 0.8
