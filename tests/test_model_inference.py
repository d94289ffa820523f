"""The committed release, through the runtime path the scorer uses (no torch)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from sentimon.config import ModelSettings, Settings
from sentimon.model.card import CARD_JSON, sha256
from sentimon.model.inference import RELEASE_DIR, Prediction, SentimentModel
from sentimon.model.labels import SENTIMENTS, TOPICS
from sentimon.model.providers import ProviderError, gpu_present
from sentimon.model.release import MAX_RELEASE_BYTES, dir_bytes

TEXTS = [
    "$AAPL beats earnings estimates, raises guidance; shares jump 6% after hours",
    "Fed raises rates by 75 basis points, signals more hikes ahead https://t.co/abc",
    "Oil prices slump as OPEC+ output rises",
    "",
    "Tesla recalls 300,000 vehicles over seat belt issue " * 30,  # far beyond max_length
]


@pytest.fixture(scope="module")
def model() -> SentimentModel:
    return SentimentModel.load(device="cpu")


def test_release_contents_and_size():
    names = {p.name for p in RELEASE_DIR.iterdir()}
    assert {"model.int8.onnx", "model.fp16.onnx", "tokenizer.json", CARD_JSON,
            "MODEL_CARD.md"} <= names
    assert "model.fp32.onnx" not in names  # ~90 MB: not shipped
    assert dir_bytes(RELEASE_DIR) <= MAX_RELEASE_BYTES


def test_card_hashes_match_files():
    card = json.loads((RELEASE_DIR / CARD_JSON).read_text(encoding="utf-8"))
    assert card["labels"] == {"topic": list(TOPICS), "sentiment": list(SENTIMENTS)}
    for name, a in card["artifacts"].items():
        assert sha256(RELEASE_DIR / name) == a["sha256"], name
    assert {"model.int8.onnx", "model.fp16.onnx", "tokenizer.json"} <= set(card["artifacts"])


def test_load_cpu_defaults_to_int8(model: SentimentModel):
    assert model.provider == "CPUExecutionProvider"
    assert model.variant == "int8"
    assert model.name and model.version and model.version != "unknown"
    assert model.topics == TOPICS and model.sentiments == SENTIMENTS


def test_onnx_metadata_and_io(model: SentimentModel):
    meta = model.metadata
    assert json.loads(meta["sentimon.topics"]) == list(TOPICS)
    assert json.loads(meta["sentimon.sentiments"]) == list(SENTIMENTS)
    assert meta["sentimon.variant"] == "int8"
    sess = model._session
    inputs = {i.name: i for i in sess.get_inputs()}
    assert set(inputs) == {"input_ids", "attention_mask"}
    for i in inputs.values():
        assert all(isinstance(d, str) for d in i.shape), i.shape  # dynamic batch + sequence
    outs = {o.name: o.shape for o in sess.get_outputs()}
    assert set(outs) == {"topic_logits", "sentiment_logits"}
    assert outs["topic_logits"][1] == len(TOPICS)
    assert outs["sentiment_logits"][1] == len(SENTIMENTS)


def test_predict_shapes_and_probabilities(model: SentimentModel):
    preds = model.predict(TEXTS)
    assert len(preds) == len(TEXTS)
    for p in preds:
        assert isinstance(p, Prediction)
        assert p.topic in TOPICS and p.sentiment in SENTIMENTS
        assert 0.0 < p.topic_prob <= 1.0
        assert set(p.sentiment_probs) == set(SENTIMENTS)
        assert sum(p.sentiment_probs.values()) == pytest.approx(1.0, abs=1e-5)
        assert p.score == pytest.approx(p.sentiment_probs["positive"] - p.sentiment_probs["negative"])
        assert p.sentiment == max(p.sentiment_probs, key=p.sentiment_probs.get)
    assert model.predict([]) == []


def test_order_batching_and_padding_invariance(model: SentimentModel):
    # fp16 graph with fp32 I/O: padding, batch size and order must not change the logits.
    fp16 = SentimentModel.load(device="cpu", variant="fp16")
    a = fp16.logits(TEXTS, batch_size=64, sort_by_length=True)
    b = fp16.logits(TEXTS, batch_size=1, sort_by_length=False)
    c = fp16.logits(TEXTS[::-1], batch_size=2)
    for x, y, z in zip(a, b, c, strict=True):
        np.testing.assert_allclose(x, y, atol=2e-2)
        np.testing.assert_allclose(x[::-1], z, atol=2e-2)
    # int8 quantises activations per batch, so only decisions are compared.
    a8 = model.logits(TEXTS, batch_size=64)
    b8 = model.logits(TEXTS, batch_size=1, sort_by_length=False)
    for x, y in zip(a8, b8, strict=True):
        assert (x.argmax(-1) == y.argmax(-1)).mean() >= 0.8
        np.testing.assert_allclose(x, y, atol=1.0)  # batch-dependent activation scales


def test_truncation_and_token_counts(model: SentimentModel):
    counts = model.token_counts(TEXTS)
    assert counts[3] == 2  # [CLS] [SEP]
    assert counts[4] == 128
    short = SentimentModel.load(device="cpu", max_length=16)
    assert max(short.token_counts(TEXTS)) == 16
    assert len(short.predict(TEXTS)) == len(TEXTS)


def test_from_settings_and_fp16_on_cpu():
    s = Settings(model=ModelSettings(device="cpu", variant="fp16", max_length=64, threads=1))
    m = SentimentModel.from_settings(s)
    assert (m.variant, m.provider, m.max_length) == ("fp16", "CPUExecutionProvider", 64)
    assert len(m.predict(TEXTS[:2])) == 2


def test_thread_spinning_off_unless_configured():
    def spinning(m: SentimentModel) -> str:
        return m._session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning")

    assert spinning(SentimentModel.load(device="cpu")) == "0"
    s = Settings(model=ModelSettings(device="cpu", thread_spinning=True))
    assert spinning(SentimentModel.from_settings(s)) == "1"


@pytest.mark.skipif(gpu_present(), reason="a GPU is present")
def test_cuda_without_gpu_fails_clearly():
    with pytest.raises(ProviderError, match="no NVIDIA GPU"):
        SentimentModel.load(device="cuda")


def test_runtime_imports_no_torch_and_auto_is_quiet():
    code = textwrap.dedent(
        """
        import sys
        from sentimon.model.inference import SentimentModel
        m = SentimentModel.load()  # device=auto
        p = m.predict(["Fed cuts rates", "Stocks plunge"])
        heavy = [k for k in ("torch", "transformers") if k in sys.modules]
        print("HEAVY", heavy, m.provider, m.variant, len(p))
        """
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "HEAVY []" in r.stdout
    if not gpu_present():
        assert "CPUExecutionProvider int8 2" in r.stdout
        # asking onnxruntime-gpu for CUDA without a GPU logs library-load errors
        assert "libcu" not in r.stderr and "CUDA" not in r.stderr, r.stderr


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_present(), reason="needs an NVIDIA GPU")
def test_cuda_fp16_matches_cpu(model: SentimentModel):
    gpu = SentimentModel.load(device="cuda")
    assert (gpu.provider, gpu.variant) == ("CUDAExecutionProvider", "fp16")
    g = [p.sentiment for p in gpu.predict(TEXTS)]
    c = [p.sentiment for p in model.predict(TEXTS)]
    assert sum(x == y for x, y in zip(g, c, strict=True)) >= len(TEXTS) - 1
