"""Tiny end-to-end run: train -> export -> evaluate -> score, plus resume determinism.

CI-sized (a few hundred rows, a few optimiser steps); needs the ``train`` extra.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from sentimon.model.data import default_data_dir, load_splits  # noqa: E402
from sentimon.model.labels import SENTIMENTS, TOPICS  # noqa: E402

pytestmark = [
    pytest.mark.training,
    pytest.mark.skipif(
        not (default_data_dir() / "twitter_fin_topic").is_dir(), reason="data sets not found"
    ),
]


def _cfg(out: Path, **kw):
    from sentimon.model.train import TrainConfig

    base = dict(out=str(out), limit=100, epochs=1, batch_size=16, max_length=32,
                save_every=2, threads=1, patience=5)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    from sentimon.model.train import train

    out = tmp_path_factory.mktemp("train")
    model_dir = train(_cfg(out, max_steps=6), progress=False)
    assert (model_dir / "encoder" / "config.json").exists()
    assert (model_dir / "heads.pt").exists()
    assert (out / "checkpoints" / "epoch-1.pt").exists()
    assert json.loads((out / "train_summary.json").read_text())["history"]
    return model_dir


@pytest.fixture(scope="module")
def exported(trained: Path, tmp_path_factory) -> tuple[Path, dict]:
    from sentimon.model.export import export

    splits = load_splits(limit=60)
    texts = [e.text for e in (*splits.topic_valid, *splits.sent_valid)]
    out = tmp_path_factory.mktemp("export")
    result = export(trained, out, texts=texts, version="0.0.test")
    return out, result.info


def test_export_variants_metadata_and_parity(exported):
    import onnx

    out, info = exported
    for v in ("fp32", "int8", "fp16"):
        m = onnx.load(str(out / f"model.{v}.onnx"), load_external_data=False)
        meta = {p.key: p.value for p in m.metadata_props}
        assert meta["sentimon.variant"] == v
        assert meta["sentimon.version"] == "0.0.test"
        assert meta["sentimon.name"] == "sentimon-minilm-2head"  # the default base
        assert json.loads(meta["sentimon.topics"]) == list(TOPICS)
        assert json.loads(meta["sentimon.sentiments"]) == list(SENTIMENTS)
        assert [o.name for o in m.graph.output] == ["topic_logits", "sentiment_logits"]
        assert [i.name for i in m.graph.input] == ["input_ids", "attention_mask"]
        dims = m.graph.input[0].type.tensor_type.shape.dim
        assert dims[0].dim_param and dims[1].dim_param  # dynamic batch and sequence
    # The transformer optimizer fused attention and the layer norms.
    assert info["name"] == "sentimon-minilm-2head"
    fused = info["fused_operators"]
    assert fused.get("Attention", 0) + fused.get("MultiHeadAttention", 0) == 6
    assert fused.get("SkipLayerNormalization", 0) >= 6
    assert info["parity_fp32_vs_pytorch_max_abs_logit_diff"] < 1e-3
    q = info["int8"]
    assert q["granularity"] in ("per_channel", "per_tensor")
    for key in ("agreement_per_tensor", "agreement_per_channel"):
        assert 0.0 <= q[key]["min"] <= 1.0
    assert q["meets_agreement_target"] == (q["agreement"]["min"] >= 0.98)
    print("int8 agreement:", json.dumps(q["agreement"]))


def test_model_name_says_which_base():
    from sentimon.model.export import MODEL_NAME, model_name
    from sentimon.model.network import default_base_dir

    assert model_name(str(default_base_dir())) == MODEL_NAME
    assert model_name("/models/all-mpnet-base-v2") == "sentimon-all-mpnet-base-v2-2head"
    assert model_name("/models/FinBERT_tone/") == "sentimon-finbert-tone-2head"
    assert model_name("") == MODEL_NAME


def test_evaluate_card_and_score(exported, tmp_path):
    from sentimon.model.calibration import CALIBRATION_FILE, FIGURE_FILE, calibrate_dir
    from sentimon.model.card import build_card
    from sentimon.model.evaluate import evaluate_dir
    from sentimon.model.inference import SentimentModel
    from sentimon.model.release import build_release

    out, _ = exported
    # As `sentimon export --release` does: fit the temperatures on the run's dev split first.
    cal = calibrate_dir(out, data_dir=default_data_dir(), variants=["int8"], limit=100)
    assert cal["fitted_on"]["topic_rows"] == 5 and cal["fitted_on"]["sentiment_rows"] == 5
    temps = cal["temperatures"]["int8"]
    metrics = evaluate_dir(out, variants=["fp32", "int8"], limit=40)
    assert metrics["variants"]["int8"]["calibration"]["temperature"] == temps
    assert metrics["variants"]["fp32"]["calibration"]["temperature"] == {
        "topic": 1.0, "sentiment": 1.0}  # not fitted: T = 1
    for v in ("fp32", "int8"):
        r = metrics["variants"][v]
        assert r["topic"]["n"] == 40 and r["sentiment"]["n"] == 40
        assert len(r["topic"]["confusion"]) == len(TOPICS)
        assert len(r["sentiment"]["per_class"]) == len(SENTIMENTS)
    card = build_card(out, metrics)
    release = tmp_path / "release"
    size = build_release(out, card, release_dir=release)
    assert size <= 80_000_000
    assert not (release / "model.fp32.onnx").exists()
    written = json.loads((release / "model_card.json").read_text())
    assert written["training"]["train_seconds"] is not None
    assert set(written["artifacts"]) >= {"model.int8.onnx", "model.fp16.onnx", "tokenizer.json",
                                         CALIBRATION_FILE, FIGURE_FILE}
    assert written["calibration"]["temperatures"]["int8"] == temps
    model = SentimentModel.load(release, device="cpu")
    assert model.temperatures == temps
    preds = model.predict(["Fed hikes rates again", "Apple shares soar on record iPhone sales"])
    assert [p.topic in TOPICS for p in preds] == [True, True]
    assert model.version == "0.0.test" and model.variant == "int8"


def test_resume_continues_identically(tmp_path, monkeypatch):
    import sentimon.model.train as tr

    ref = tr.train(_cfg(tmp_path / "ref", limit=40, max_length=16), progress=False)
    want = torch.load(ref / "heads.pt")

    # Crash after 3 steps (checkpoint at step 2), then resume.
    calls = {"n": 0}
    real = tr._tensors

    def crashing(*a, **k):
        calls["n"] += 1
        if calls["n"] > 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(tr, "_tensors", crashing)
    cfg = _cfg(tmp_path / "res", limit=40, max_length=16)
    with pytest.raises(KeyboardInterrupt):
        tr.train(cfg, progress=False)
    monkeypatch.setattr(tr, "_tensors", real)
    got = torch.load(tr.train(cfg, resume=True, progress=False) / "heads.pt")
    for k in want:
        np.testing.assert_allclose(got[k].numpy(), want[k].numpy(), atol=1e-5)
