"""Multi-task fine-tuning of the two-head encoder (``sentimon train``).

Method, in short:

* Batches mix both data sets: all training examples are shuffled together, so a batch
  holds topic rows and sentiment rows; each head's loss covers only its own rows.
* Length-grouped batches with dynamic padding: shuffle, cut into mega-batches of
  ``50 * batch_size``, sort each by length, slice into batches, shuffle the batch order.
  Tweets are ~24 tokens on average, so padding to the batch's longest saves most compute.
* Class imbalance: class-weighted cross-entropy with sqrt-inverse-frequency weights,
  ``w_c = sqrt(N / (K * n_c))``, rescaled so the average weight per *example* is 1. The
  square root lifts rare classes (IPO: ~40 rows) without the over-correction of full
  inverse frequency, which hurts accuracy on the frequent classes.
* AdamW, linear warm-up then linear decay; the heads start from scratch and get a
  10x learning rate.
* Early stopping on a dev split held out of the training files (mean of both heads'
  dev accuracy); the validation splits are never looked at here.
* Checkpoints: ``checkpoints/epoch-N.pt`` after each epoch and ``checkpoints/last.pt``
  every ``--save-every`` steps; ``--resume`` continues from ``last.pt`` mid-epoch, with
  the same batch order (derived from seed + epoch) and restored RNG states.
* Mixed precision (bf16 autocast, or fp16 with loss scaling) when CUDA is present.
* Distillation (``--distill FILE``, a teacher-logits file of ``model/distill.py``): rows the
  teacher scored also get a soft-target loss per head, ``T^2 KL(softmax(teacher / T) ||
  softmax(student / T))`` (Hinton et al., 2015), mixed as ``(1 - a) hard + a soft``; the
  file's unlabelled tweets join the training rows with soft targets only.
"""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from sentimon.model.data import Example, class_counts, default_data_dir, load_splits
from sentimon.model.labels import IGNORE_INDEX, SENTIMENTS, TOPICS
from sentimon.model.metrics import classification_report
from sentimon.model.network import TwoHeadModel, default_base_dir
from sentimon.model.text import load_tokenizer, pad_batch

log = logging.getLogger(__name__)

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)


@dataclass
class TrainConfig:
    """Every knob of a training run; written to ``train_config.json`` and the model card."""

    out: str = "runs/train"
    base: str | None = None
    data: str | None = None
    epochs: int = 4
    batch_size: int = 32
    lr: float = 8e-5
    head_lr_mult: float = 10.0
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    max_length: int = 64
    dropout: float = 0.1
    seed: int = 13
    dev_fraction: float = 0.05
    patience: int = 2
    limit: int | None = None
    max_steps: int | None = None
    save_every: int = 200
    threads: int = 0
    imbalance: str = "class-weighted CE, sqrt-inverse-frequency weights"
    distill: str | None = None
    distill_weight: float = 0.5
    distill_temperature: float = 2.0
    extra: dict[str, Any] = field(default_factory=dict)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def sqrt_inverse_frequency(counts: list[int]) -> torch.Tensor:
    """Class weights ``sqrt(N / (K n_c))``, scaled so ``sum_c n_c w_c = N`` (mean 1 per row)."""
    n = np.asarray(counts, dtype=np.float64)
    safe = np.maximum(n, 1.0)
    w = np.sqrt(n.sum() / (len(n) * safe))
    w *= n.sum() / max(float((n * w).sum()), 1e-9)
    return torch.tensor(w, dtype=torch.float32)


def make_batches(lengths: list[int], batch_size: int, seed: int) -> list[list[int]]:
    """Length-grouped, shuffled batches of example indices (deterministic for a seed)."""
    rng = random.Random(seed)
    idx = list(range(len(lengths)))
    rng.shuffle(idx)
    mega = batch_size * 50
    batches: list[list[int]] = []
    for start in range(0, len(idx), mega):
        chunk = sorted(idx[start : start + mega], key=lambda i: lengths[i], reverse=True)
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def _tensors(
    ids: list[list[int]], rows: list[Example], sel: list[int], device: torch.device
) -> tuple[torch.Tensor, ...]:
    input_ids, mask = pad_batch([ids[i] for i in sel])
    topic = torch.tensor([rows[i].topic for i in sel], dtype=torch.long)
    sent = torch.tensor([rows[i].sentiment for i in sel], dtype=torch.long)
    return tuple(
        t.to(device) for t in (torch.from_numpy(input_ids), torch.from_numpy(mask), topic, sent)
    )


def distill_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """``T^2 KL(softmax(teacher / T) || softmax(student / T))``, mean over rows.

    The ``T^2`` keeps the soft term's gradient scale independent of ``T``.
    """
    t = temperature
    return F.kl_div(
        F.log_softmax(student / t, dim=-1), F.log_softmax(teacher / t, dim=-1),
        reduction="batchmean", log_target=True,
    ) * (t * t)


@torch.no_grad()
def predict_logits(
    model: TwoHeadModel,
    ids: list[list[int]],
    device: torch.device,
    batch_size: int = 128,
) -> tuple[np.ndarray, np.ndarray]:
    """Both heads' fp32 logits for pre-tokenised texts, in input order."""
    model.eval()
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    topic = np.zeros((len(ids), len(TOPICS)), dtype=np.float32)
    sent = np.zeros((len(ids), len(SENTIMENTS)), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        sel = order[start : start + batch_size]
        input_ids, mask = pad_batch([ids[i] for i in sel])
        t, s = model(torch.from_numpy(input_ids).to(device), torch.from_numpy(mask).to(device))
        topic[sel] = t.float().cpu().numpy()
        sent[sel] = s.float().cpu().numpy()
    return topic, sent


def evaluate_rows(
    model: TwoHeadModel, tokenizer: Any, rows: list[Example], device: torch.device
) -> dict[str, dict[str, Any]]:
    """Per-head reports of the PyTorch model on labelled examples (each head on its rows)."""
    ids = [e.ids for e in tokenizer.encode_batch([r.text for r in rows])]
    topic_logits, sent_logits = predict_logits(model, ids, device)
    out: dict[str, dict[str, Any]] = {}
    for head, logits, names in (
        ("topic", topic_logits, TOPICS),
        ("sentiment", sent_logits, SENTIMENTS),
    ):
        y = np.array([getattr(r, head) for r in rows])
        keep = y != IGNORE_INDEX
        if keep.any():
            out[head] = classification_report(y[keep], logits[keep].argmax(-1), names)
    return out


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def train(cfg: TrainConfig, *, resume: bool = False, progress: bool = True) -> Path:
    """Run (or resume) training; returns the directory of the best model (``out/model``)."""
    out = Path(cfg.out)
    ckpt_dir = out / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    base = Path(cfg.base) if cfg.base else default_base_dir()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    data_dir = Path(cfg.data) if cfg.data else default_data_dir()
    splits = load_splits(data_dir, dev_fraction=cfg.dev_fraction, seed=cfg.seed, limit=cfg.limit)
    log.info("data: %s", splits.stats)
    rows, soft = splits.train, None
    if cfg.distill:
        from sentimon.model.distill import soft_targets

        soft = soft_targets(
            Path(cfg.distill), splits.train, data_dir,
            exclude=[*splits.dev, *splits.topic_valid, *splits.sent_valid], limit=cfg.limit,
        )
        rows = soft.rows
        log.info("distillation: %s", soft.stats)
    tokenizer = load_tokenizer(base / "tokenizer.json", cfg.max_length)
    train_ids = [e.ids for e in tokenizer.encode_batch([r.text for r in rows])]
    lengths = [len(x) for x in train_ids]

    topic_w = sqrt_inverse_frequency(class_counts(rows, "topic", len(TOPICS)))
    sent_w = sqrt_inverse_frequency(class_counts(rows, "sentiment", len(SENTIMENTS)))
    topic_loss = nn.CrossEntropyLoss(weight=topic_w.to(device), ignore_index=IGNORE_INDEX)
    sent_loss = nn.CrossEntropyLoss(weight=sent_w.to(device), ignore_index=IGNORE_INDEX)

    model = TwoHeadModel.from_base(base, dropout=cfg.dropout).to(device)
    head_params = [p for n, p in model.named_parameters() if not n.startswith("encoder.")]
    no_decay = ("bias", "LayerNorm.weight", "layer_norm", "norm.weight")
    enc_decay = [
        p for n, p in model.encoder.named_parameters() if not any(k in n for k in no_decay)
    ]
    enc_nodecay = [p for n, p in model.encoder.named_parameters() if any(k in n for k in no_decay)]
    optimizer = torch.optim.AdamW(
        [
            {"params": enc_decay, "weight_decay": cfg.weight_decay, "lr": cfg.lr},
            {"params": enc_nodecay, "weight_decay": 0.0, "lr": cfg.lr},
            {"params": head_params, "weight_decay": 0.0, "lr": cfg.lr * cfg.head_lr_mult},
        ]
    )
    steps_per_epoch = math.ceil(len(train_ids) / cfg.batch_size)
    total_steps = steps_per_epoch * cfg.epochs
    if cfg.max_steps:
        total_steps = min(total_steps, cfg.max_steps)
    warmup = max(1, int(total_steps * cfg.warmup_ratio))

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    use_amp = device.type == "cuda"
    amp_dtype = (
        torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    )
    # Loss scaling is only needed for fp16; bf16 has fp32's exponent range.
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)

    state: dict[str, Any] = {
        "epoch": 0,
        "step_in_epoch": 0,
        "global_step": 0,
        "best_score": -1.0,
        "best_epoch": -1,
        "bad_epochs": 0,
        "history": [],
        "elapsed_s": 0.0,
    }
    last = ckpt_dir / "last.pt"
    if resume:
        if not last.exists():
            raise FileNotFoundError(f"--resume: no checkpoint at {last}")
        ck = torch.load(last, map_location=device, weights_only=False)
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        scheduler.load_state_dict(ck["scheduler"])
        scaler.load_state_dict(ck["scaler"])
        state = ck["state"]
        _set_rng_state(ck["rng"])
        log.info("resumed at epoch %d step %d", state["epoch"], state["step_in_epoch"])

    (out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2), encoding="utf-8")
    meta: dict[str, Any] = {
        "base": str(base), "train_config": asdict(cfg), "data_stats": splits.stats,
    }
    if soft is not None:
        meta["distill_stats"] = soft.stats

    def save_ckpt(path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        torch.save(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "state": state,
                "rng": _rng_state(),
            },
            tmp,
        )
        tmp.replace(path)  # atomic: a kill mid-write never leaves a broken last.pt

    t0 = time.monotonic() - state["elapsed_s"]
    done = False
    while state["epoch"] < cfg.epochs and not done:
        epoch = state["epoch"]
        batches = make_batches(lengths, cfg.batch_size, cfg.seed * 1000 + epoch)
        model.train()
        bar = tqdm(
            total=len(batches),
            initial=state["step_in_epoch"],
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
            disable=not progress,
            mininterval=5.0,
            dynamic_ncols=True,
        )
        running: float | None = None
        for b in range(state["step_in_epoch"], len(batches)):
            input_ids, mask, y_topic, y_sent = _tensors(train_ids, rows, batches[b], device)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                t_logits, s_logits = model(input_ids, mask)
            loss = torch.zeros((), device=device)
            # A batch may hold no row of one set; CE over zero rows would be NaN.
            if (y_topic != IGNORE_INDEX).any():
                loss = loss + topic_loss(t_logits.float(), y_topic)
            if (y_sent != IGNORE_INDEX).any():
                loss = loss + sent_loss(s_logits.float(), y_sent)
            if soft is not None:
                sel = batches[b]
                has = torch.from_numpy(soft.has_soft[sel]).to(device)
                if has.any():
                    t_soft = torch.from_numpy(soft.topic[sel]).to(device)[has]
                    s_soft = torch.from_numpy(soft.sentiment[sel]).to(device)[has]
                    kd = distill_loss(t_logits.float()[has], t_soft, cfg.distill_temperature)
                    kd = kd + distill_loss(s_logits.float()[has], s_soft, cfg.distill_temperature)
                    loss = (1 - cfg.distill_weight) * loss + cfg.distill_weight * kd
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            state["global_step"] += 1
            state["step_in_epoch"] = b + 1
            running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
            bar.set_postfix(loss=f"{running:.3f}", refresh=False)
            bar.update(1)
            if cfg.save_every and state["global_step"] % cfg.save_every == 0:
                state["elapsed_s"] = time.monotonic() - t0
                save_ckpt(last)
                # With --no-progress (background runs) this is the only sign of the pace.
                log.info("checkpoint: step %d of %d (epoch %d), %.1f s since start",
                         state["global_step"], total_steps, epoch + 1, state["elapsed_s"])
            if cfg.max_steps and state["global_step"] >= cfg.max_steps:
                done = True
                break
        bar.close()

        dev = evaluate_rows(model, tokenizer, splits.dev, device)
        accs = [dev[h]["accuracy"] for h in ("topic", "sentiment") if h in dev]
        score = float(np.mean(accs)) if accs else 0.0
        row = {
            "epoch": epoch + 1,
            "global_step": state["global_step"],
            "dev_score": score,
            **{f"dev_{h}_accuracy": dev[h]["accuracy"] for h in dev},
            **{f"dev_{h}_macro_f1": dev[h]["macro_f1"] for h in dev},
            "elapsed_s": round(time.monotonic() - t0, 1),
        }
        state["history"].append(row)
        log.info("epoch %d: %s", epoch + 1, row)
        if score > state["best_score"]:
            state["best_score"], state["best_epoch"], state["bad_epochs"] = score, epoch + 1, 0
            model.save(out / "model", {**meta, "epoch": epoch + 1, "dev": row})
            for name in TOKENIZER_FILES:
                if (base / name).exists():
                    shutil.copy2(base / name, out / "model" / name)
        else:
            state["bad_epochs"] += 1
        state["epoch"], state["step_in_epoch"] = epoch + 1, 0
        state["elapsed_s"] = time.monotonic() - t0
        save_ckpt(ckpt_dir / f"epoch-{epoch + 1}.pt")
        save_ckpt(last)
        if state["bad_epochs"] > cfg.patience:
            log.info("early stop: no dev improvement for %d epochs", state["bad_epochs"])
            break

    summary = {
        "best_epoch": state["best_epoch"],
        "best_dev_score": state["best_score"],
        "history": state["history"],
        "train_seconds": round(state["elapsed_s"], 1),
        "device": device.type,
        "torch_threads": torch.get_num_threads(),
        "data_stats": splits.stats,
        "class_weights": {"topic": topic_w.tolist(), "sentiment": sent_w.tolist()},
        **({"distill_stats": soft.stats} if soft is not None else {}),
    }
    (out / "train_summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return out / "model"
