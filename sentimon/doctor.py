"""``sentimon doctor``: what is installed, what is found, what answers. Never prints secrets."""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sentimon import __version__
from sentimon.config import Settings


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    required: bool = True


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser(
        "doctor",
        help="check versions, tools, the CPU's int8 support, ONNX Runtime providers, GPU, and "
        "which servers answer",
        description="Print what sentimon finds on this machine and whether the configured "
        "Kafka, Prometheus and Alertmanager answer, and the scorer, monitor and notify daemons "
        "when they run. Exit 1 when a required check fails.",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output (default: a table)")
    p.add_argument("--timeout", type=float, default=5.0, metavar="S",
                   help="seconds to wait for each server (default 5)")
    p.set_defaults(func=run)


def _version_of(cmd: list[str], pattern: str = r"(\d+\.\d+[.\d]*)") -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(pattern, proc.stdout + proc.stderr)
    return match.group(1) if match else "unknown version"


def _package(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def collect(settings: Settings, *, timeout_s: float = 5.0) -> list[Check]:
    """Run every check; each is cheap and none needs the servers to be up."""
    from sentimon.kafka.admin import wait_for_broker
    from sentimon.kafka.clients import KafkaAuthError
    from sentimon.stack import observability as obs
    from sentimon.stack.kafka_broker import KAFKA_VERSION, cache_dir

    checks = [
        Check("sentimon", True, f"{__version__} on Python {platform.python_version()} "
              f"({sys.executable})"),
    ]
    java = _version_of(["java", "-version"], r'version "([^"]+)"')
    checks.append(Check("java", java is not None and int(java.split(".")[0]) >= 17,
                        java or "not found (need 17+ for the Kafka broker)"))
    mvn = _version_of(["mvn", "-v"], r"Apache Maven ([\d.]+)")
    checks.append(Check("maven", mvn is not None, mvn or "not found (resolves the broker jars)"))
    libs = cache_dir() / f"kafka_2.13-{KAFKA_VERSION}" / "libs"
    checks.append(Check("kafka jars", True, f"{KAFKA_VERSION}: "
                        + ("cached in " + str(libs) if (libs / ".complete").exists()
                           else "not cached yet (first `stack up` resolves them)")))
    for tool in ("prometheus", "promtool", "prometheus-alertmanager", "amtool"):
        v = _version_of([tool, "--version"], r"version (\S+)")
        checks.append(Check(tool, v is not None, v or "not found (Debian package)"))

    ort = _package("onnxruntime-gpu") or _package("onnxruntime")
    if ort is None:
        checks.append(Check("onnxruntime", False, "not installed"))
    else:
        checks.append(Check("onnxruntime", True, f"{ort}; usable providers here: "
                            + ", ".join(usable_providers())))
    checks.append(Check("cpu", True, cpu_summary(), required=False))
    gpu = _gpu_seen()
    checks.append(Check("gpu", True, gpu, required=False))
    for pkg in ("kafka-python", "tokenizers", "prometheus-client"):
        v = _package(pkg)
        checks.append(Check(pkg, v is not None, v or "not installed"))
    torch = _package("torch")
    checks.append(Check("torch (train extra)", True,
                        torch or "not installed (only `train`/`export` need it)", required=False))
    checks.append(_model_check(settings))

    kafka = settings.kafka
    where = f"{kafka.bootstrap_servers} ({kafka.security_protocol}" + (
        f", {kafka.sasl_mechanism} as {kafka.sasl_username})" if kafka.sasl_mechanism else ")")
    try:
        up = wait_for_broker(kafka, timeout_s=timeout_s)
        checks.append(Check("kafka", up, ("answering at " if up else "not answering at ") + where))
    except KafkaAuthError as exc:
        checks.append(Check("kafka", False, f"{exc} ({where})"))
    for name, url in (("prometheus", obs.prometheus_url(settings)),
                      ("alertmanager", obs.alertmanager_url(settings))):
        ok = obs.http_ok(url + "/-/ready", timeout_s=timeout_s)
        checks.append(Check(f"{name} server", ok, ("answering at " if ok else "not answering at ") + url))
    checks += _daemon_checks(settings, timeout_s=timeout_s)
    return checks


def usable_providers() -> list[str]:
    """ONNX Runtime providers that can run here: onnxruntime-gpu lists CUDA and TensorRT even
    without a GPU (or without TensorRT's libraries), and a session on them would fail."""
    import ctypes.util

    import onnxruntime

    from sentimon.model.providers import gpu_present

    gpu = gpu_present()
    usable = []
    for name in onnxruntime.get_available_providers():
        if name == "TensorrtExecutionProvider" and not (gpu and ctypes.util.find_library("nvinfer")):
            continue
        if name == "CUDAExecutionProvider" and not gpu:
            continue
        usable.append(name)
    return usable


def _daemon_checks(settings: Settings, *, timeout_s: float) -> list[Check]:
    """The scorer, monitor and notify endpoints: required to answer only when recorded as
    running under SENTIMON_HOME (by `sentimon demo`); otherwise a note."""
    from sentimon.stack.manager import daemon_status

    checks = []
    for d in daemon_status(settings, timeout_s=timeout_s):
        if d.answering:
            detail = f"ready at {d.url}" + (f" (pid {d.pid})" if d.pid else "")
        elif d.running:
            detail = f"pid {d.pid} runs but {d.url} does not answer ready; see {d.log}"
        else:
            detail = f"not running ({d.url})"
        checks.append(Check(f"{d.name} daemon", d.answering or not d.running, detail,
                            required=d.running))
    return checks


#: CPU flags (as /proc/cpuinfo names them) that decide how fast the int8 model runs, best first.
INT8_FLAGS = (("avx512_vnni", "AVX-512 VNNI"), ("avx_vnni", "AVX-VNNI"), ("avx2", "AVX2"))


def cpu_summary(cpuinfo: str | None = None) -> str:
    """Cores and the best int8 instruction set: scoring speed depends on it (docs/benchmarks.md)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            cpuinfo = ""
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown CPU")
    flags = set(next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines()
                      if line.startswith("flags")), []))
    best = next((name for flag, name in INT8_FLAGS if flag in flags), None)
    int8 = f"int8 kernels use {best}" if best else "no AVX2: int8 scoring will be slow"
    return f"{model}, {os.cpu_count() or '?'} cores; {int8}"


def _gpu_seen() -> str:
    try:
        from sentimon.model.providers import gpu_present
    except ImportError:
        return "unknown"
    return "NVIDIA GPU present" if gpu_present() else "no GPU: scoring runs on CPU"


def _model_check(settings: Settings) -> Check:
    try:
        from sentimon.model.inference import SentimentModel

        model = SentimentModel.from_settings(settings)
    except Exception as exc:  # a missing or broken release must not hide the other checks
        return Check("model", False, f"cannot load: {exc}")
    return Check("model", True, f"{model.name}@{model.version} on {model.provider} "
                 f"({model.variant})")


def run(args: argparse.Namespace, settings: Settings) -> int:
    # The checks load the model and open Kafka connections, whose info lines would come
    # before the table; warnings and errors still show.
    quiet = settings.log_level != "DEBUG"
    if quiet:
        logging.disable(logging.INFO)
    try:
        checks = collect(settings, timeout_s=args.timeout)
    finally:
        if quiet:
            logging.disable(logging.NOTSET)
    if args.json:
        print(json.dumps([asdict(c) for c in checks], indent=2))
    else:
        width = max(len(c.name) for c in checks)
        for c in checks:
            mark = "ok  " if c.ok else ("FAIL" if c.required else "warn")
            print(f"[{mark}] {c.name:<{width}}  {c.detail}")
    return 0 if all(c.ok or not c.required for c in checks) else 1
