"""Scoring with the exported ONNX model: text in, topic + sentiment out.

This is the runtime path of the scorer daemon: it imports neither torch nor transformers,
only the Rust ``tokenizers`` library, onnxruntime and numpy.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sentimon.model.calibration import HEADS, temperatures_for
from sentimon.model.labels import SENTIMENTS, TOPICS
from sentimon.model.providers import CUDA, VARIANTS, gpu_present, select_provider
from sentimon.model.text import load_tokenizer, normalize, pad_batch

if TYPE_CHECKING:
    from sentimon.config import Settings

log = logging.getLogger(__name__)

#: The packaged release (int8 + fp16 ONNX, tokenizer, model card).
RELEASE_DIR = Path(__file__).resolve().parent / "release"
META_PREFIX = "sentimon."
SMALL_ENCODE = 32
"""Fewer texts than this are tokenized one by one, more with the tokenizer's thread pool."""


def onnx_file(model_dir: Path, variant: str) -> Path:
    """Path of one variant's ONNX file in an export or release directory."""
    return model_dir / f"model.{variant}.onnx"


@dataclass(frozen=True, slots=True)
class Prediction:
    """Scores of one text."""

    topic: str
    topic_prob: float
    sentiment: str
    sentiment_probs: dict[str, float]
    score: float  # P(positive) - P(negative), in [-1, 1]


def _softmax(x: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    x = x.astype(np.float64) / temperature
    x = x - x.max(axis=-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=-1, keepdims=True)


class SentimentModel:
    """A loaded two-head ONNX model; thread-safe for concurrent :meth:`predict` calls on CPU.

    Probabilities are temperature-scaled per head with ``temperatures`` (from the
    directory's ``calibration.json``; 1.0 for a head or directory without one), so
    ``P(negative)`` means what it says; :meth:`logits` stays raw.
    """

    name: str
    version: str
    provider: str
    variant: str

    def __init__(
        self,
        session: Any,
        tokenizer: Any,
        *,
        provider: str,
        variant: str,
        max_length: int,
        path: Path,
        temperatures: Mapping[str, float] | None = None,
    ) -> None:
        self._session = session
        self._tokenizer = tokenizer
        self.provider = provider
        self.variant = variant
        self.max_length = max_length
        self.path = path
        self.temperatures: dict[str, float] = {h: 1.0 for h in HEADS}
        self.temperatures.update(temperatures or {})
        meta = dict(session.get_modelmeta().custom_metadata_map)
        self.metadata: dict[str, str] = meta
        self.name = meta.get(META_PREFIX + "name", path.parent.name)
        self.version = meta.get(META_PREFIX + "version", "unknown")
        self.topics: tuple[str, ...] = tuple(
            json.loads(meta[META_PREFIX + "topics"]) if META_PREFIX + "topics" in meta else TOPICS
        )
        self.sentiments: tuple[str, ...] = tuple(
            json.loads(meta[META_PREFIX + "sentiments"])
            if META_PREFIX + "sentiments" in meta
            else SENTIMENTS
        )
        if set(self.sentiments) != set(SENTIMENTS):
            raise ValueError(f"{path}: sentiment labels {self.sentiments} are not {SENTIMENTS}")
        self._neg = self.sentiments.index("negative")
        self._pos = self.sentiments.index("positive")
        self._inputs = {i.name for i in session.get_inputs()}

    @property
    def session_providers(self) -> tuple[str, ...]:
        """Execution providers the ONNX Runtime session really uses, first = preferred.

        ``provider`` is the one requested; a session that could not create it runs on the
        next one (usually CPU), which only this shows.
        """
        return tuple(self._session.get_providers())

    @classmethod
    def load(
        cls,
        model_dir: Path | None = None,
        *,
        device: str = "auto",
        variant: str = "auto",
        max_length: int = 128,
        threads: int = 0,
        thread_spinning: bool = False,
        calibrated: bool = True,
    ) -> SentimentModel:
        """Load a release/export directory; ``device``/``variant`` as in ``ModelSettings``.

        ``variant="auto"`` takes fp16 on CUDA and int8 on CPU, falling back to another
        variant present in the directory (int8 -> fp32 -> fp16) if the preferred one is not.
        ``thread_spinning`` as ``ModelSettings.thread_spinning`` (off: idle threads sleep).
        ``calibrated=False`` ignores ``calibration.json`` (T = 1; for refitting it).
        """
        import onnxruntime as ort

        model_dir = Path(model_dir) if model_dir is not None else RELEASE_DIR
        provider, chosen = select_provider(
            device, ort.get_available_providers(), gpu_present(), variant
        )
        path = onnx_file(model_dir, chosen)
        if not path.exists():
            if variant != "auto":
                raise FileNotFoundError(f"no {chosen} variant in {model_dir} ({path.name})")
            order = ("fp16", "fp32", "int8") if provider == CUDA else ("int8", "fp32", "fp16")
            found = [v for v in order if onnx_file(model_dir, v).exists()]
            if not found:
                raise FileNotFoundError(
                    f"no model.{{{','.join(VARIANTS)}}}.onnx in {model_dir}; "
                    "run `sentimon export` or check SENTIMON_MODEL__DIR"
                )
            chosen, path = found[0], onnx_file(model_dir, found[0])
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = threads
        # ONNX Runtime's threads spin after each run by default; a daemon fed small batches
        # then burns cores that the broker and the other daemons need (benchmarks/spin_bench.py).
        spin = "1" if thread_spinning else "0"
        opts.add_session_config_entry("session.intra_op.allow_spinning", spin)
        opts.add_session_config_entry("session.inter_op.allow_spinning", spin)
        providers: list[Any] = [provider]
        if provider == CUDA:
            providers = [(CUDA, {"device_id": 0}), "CPUExecutionProvider"]
        session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
        tokenizer = load_tokenizer(model_dir / "tokenizer.json", max_length)
        temps = temperatures_for(model_dir, chosen) if calibrated else None
        model = cls(
            session, tokenizer, provider=provider, variant=chosen, max_length=max_length,
            path=path, temperatures=temps,
        )
        if provider == CUDA:
            # cuDNN/cuBLAS pick kernels per shape on first use; pay that at load, not on the
            # first real batch, for a range of typical shapes.
            for n in (1, 8, 64):
                model.predict(["warm up " * (k % 40) for k in range(n)], batch_size=64)
        log.info("model %s %s on %s (%s) from %s, temperatures %s", model.name, model.version,
                 provider, chosen, path, model.temperatures)
        return model

    @classmethod
    def from_settings(cls, settings: Settings) -> SentimentModel:
        """:meth:`load` with ``settings.model`` (dir, device, variant, max_length, threads, spinning)."""
        m = settings.model
        return cls.load(
            m.dir, device=m.device, variant=m.variant, max_length=m.max_length, threads=m.threads,
            thread_spinning=m.thread_spinning,
        )

    def encode(self, texts: Sequence[str], *, normalized: bool = False) -> list[list[int]]:
        """Token ids of each text after truncation, what one row of a model run holds.

        ``normalized=True`` says the texts already went through
        :func:`sentimon.model.text.normalize` (the scorer normalises once, for its cache key):
        normalising twice would unescape HTML entities twice.
        """
        if not normalized:
            texts = [normalize(t) for t in texts]
        if len(texts) < SMALL_ENCODE:
            # encode_batch hands texts to a thread pool; for a few texts that costs more than
            # it saves (6 texts: 72 against 53 us a text, more when the cores are busy).
            return [self._tokenizer.encode(t).ids for t in texts]
        return [e.ids for e in self._tokenizer.encode_batch(list(texts))]

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Tokens each text costs after truncation (for token-budget batching)."""
        return [len(x) for x in self.encode(texts)]

    def logits(
        self, texts: Sequence[str], *, batch_size: int = 64, sort_by_length: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Raw ``(topic_logits, sentiment_logits)`` as float32 arrays, in input order."""
        ids = self.encode(texts)
        return self.logits_ids(ids, fixed_runs([len(x) for x in ids], batch_size, sort_by_length))

    def logits_ids(
        self, ids: Sequence[Sequence[int]], runs: Sequence[Sequence[int]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Logits of token id lists (from :meth:`encode`), one model run per entry of ``runs``.

        ``runs`` holds indices into ``ids`` and covers each exactly once; a run is padded to
        its longest text, so runs of similar lengths waste little.
        """
        topic = np.zeros((len(ids), len(self.topics)), dtype=np.float32)
        sent = np.zeros((len(ids), len(self.sentiments)), dtype=np.float32)
        for sel in runs:
            if not sel:
                continue
            input_ids, mask = pad_batch([ids[i] for i in sel])
            feeds = {"input_ids": input_ids, "attention_mask": mask}
            if "token_type_ids" in self._inputs:
                feeds["token_type_ids"] = np.zeros_like(input_ids)
            t, s = self._run(feeds)
            topic[list(sel)] = t
            sent[list(sel)] = s
        return topic, sent

    def _run(self, feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        if self.provider != CUDA:
            t, s = self._session.run(["topic_logits", "sentiment_logits"], feeds)
            return t, s
        import onnxruntime as ort

        # I/O binding: inputs are copied to the GPU once, explicitly, and outputs are
        # written straight to host memory, instead of ORT staging both per run.
        io = self._session.io_binding()
        for name, arr in feeds.items():
            io.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(arr, "cuda", 0))
        io.bind_output("topic_logits", "cpu")
        io.bind_output("sentiment_logits", "cpu")
        self._session.run_with_iobinding(io)
        t, s = io.copy_outputs_to_cpu()
        return t, s

    def predict(
        self, texts: Sequence[str], *, batch_size: int = 64, sort_by_length: bool = True
    ) -> list[Prediction]:
        """Predictions for ``texts``, in the same order; batched and length-sorted."""
        if not texts:
            return []
        return self._predictions(
            *self.logits(texts, batch_size=batch_size, sort_by_length=sort_by_length)
        )

    def predict_ids(
        self, ids: Sequence[Sequence[int]], runs: Sequence[Sequence[int]]
    ) -> list[Prediction]:
        """Predictions for token id lists from :meth:`encode`, run as ``runs`` says.

        The scorer's path: it tokenises each record once, on arrival, and plans the runs
        itself (``sentimon.ingest.batching.plan_runs``).
        """
        if not ids:
            return []
        return self._predictions(*self.logits_ids(ids, runs))

    def _predictions(self, topic_logits: np.ndarray, sent_logits: np.ndarray) -> list[Prediction]:
        tp = _softmax(topic_logits, self.temperatures["topic"])
        sp = _softmax(sent_logits, self.temperatures["sentiment"])
        out: list[Prediction] = []
        for i in range(len(tp)):
            k = int(tp[i].argmax())
            j = int(sp[i].argmax())
            probs = {name: float(sp[i, n]) for n, name in enumerate(self.sentiments)}
            out.append(
                Prediction(
                    topic=self.topics[k],
                    topic_prob=float(tp[i, k]),
                    sentiment=self.sentiments[j],
                    sentiment_probs=probs,
                    score=float(sp[i, self._pos] - sp[i, self._neg]),
                )
            )
        return out


def fixed_runs(lengths: Sequence[int], batch_size: int, sort_by_length: bool) -> list[list[int]]:
    """Indices in runs of ``batch_size``, by length when ``sort_by_length`` (else input order)."""
    order = list(range(len(lengths)))
    if sort_by_length:
        # Similar lengths share a batch, so padding (wasted compute) stays small.
        order.sort(key=lambda i: lengths[i])
    size = max(1, batch_size)
    return [order[start : start + size] for start in range(0, len(order), size)]
