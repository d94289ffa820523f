"""Building ``model/release/``: what a fresh clone needs to score without torch.

int8 (CPU) and fp16 (GPU) ONNX, tokenizer files, the calibration (``calibration.json`` and
its reliability diagram, when the export was calibrated) and the model card. fp32 (~90 MB) is not
shipped: the release must stay under :data:`MAX_RELEASE_BYTES`. The directory is replaced
as a whole (built next to it, then swapped), never accumulated.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from sentimon.model.calibration import CALIBRATION_FILE, FIGURE_FILE
from sentimon.model.card import write_card
from sentimon.model.export import TOKENIZER_FILES
from sentimon.model.inference import RELEASE_DIR

MAX_RELEASE_BYTES = 80 * 1000 * 1000
RELEASE_VARIANTS = ("int8", "fp16")


def dir_bytes(directory: Path) -> int:
    """Total size of the files directly in ``directory``."""
    return sum(p.stat().st_size for p in directory.iterdir() if p.is_file())


def build_release(
    export_dir: Path, card: dict[str, Any], release_dir: Path = RELEASE_DIR
) -> int:
    """Replace ``release_dir`` with the release files from ``export_dir``; returns its size."""
    tmp = release_dir.with_name(release_dir.name + ".new")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for v in RELEASE_VARIANTS:
        shutil.copy2(export_dir / f"model.{v}.onnx", tmp / f"model.{v}.onnx")
    for name in (*TOKENIZER_FILES, CALIBRATION_FILE, FIGURE_FILE):
        if (export_dir / name).exists():
            shutil.copy2(export_dir / name, tmp / name)
    write_card(tmp, card)
    size = dir_bytes(tmp)
    if size > MAX_RELEASE_BYTES:
        shutil.rmtree(tmp)
        raise ValueError(f"release would be {size / 1e6:.1f} MB > {MAX_RELEASE_BYTES / 1e6:.0f} MB")
    old = release_dir.with_name(release_dir.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if release_dir.exists():
        release_dir.rename(old)
    tmp.rename(release_dir)
    shutil.rmtree(old, ignore_errors=True)
    return size
