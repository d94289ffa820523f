"""``sentimon doctor`` as a user reads it: a clean table, usable providers only, daemons."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import free_ports


def test_doctor_prints_only_its_table(tmp_path: Path) -> None:
    kafka, prom, am, scorer, monitor, notify = free_ports(6)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SENTIMON_")},
        "SENTIMON_HOME": str(tmp_path),
        "SENTIMON_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka}",
        "SENTIMON_STACK__PROMETHEUS_PORT": str(prom),
        "SENTIMON_STACK__ALERTMANAGER_PORT": str(am),
        "SENTIMON_SCORER__METRICS_PORT": str(scorer),
        "SENTIMON_MONITOR__METRICS_PORT": str(monitor),
        "SENTIMON_NOTIFY__PORT": str(notify),
    }
    proc = subprocess.run([sys.executable, "-m", "sentimon", "doctor", "--timeout", "0.5"],
                          env=env, capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 1  # nothing answers on those ports
    lines = proc.stdout.splitlines()
    assert lines and all(line.startswith(("[ok  ]", "[FAIL]", "[warn]")) for line in lines), lines
    assert " info " not in proc.stderr, proc.stderr  # the model load's info line is not shown
    names = [line[7:].split("  ")[0].strip() for line in lines]
    assert names[-3:] == ["scorer daemon", "monitor daemon", "notify daemon"]
    assert any("not running (http://127.0.0.1:" in line for line in lines)


def test_usable_providers_leave_out_gpu_ones_without_a_gpu() -> None:
    from sentimon.doctor import usable_providers
    from sentimon.model.providers import gpu_present

    usable = usable_providers()
    assert usable[-1] == "CPUExecutionProvider"
    if not gpu_present():
        assert usable == ["CPUExecutionProvider"]


def test_cpu_line_names_the_best_int8_instruction_set() -> None:
    from sentimon.doctor import cpu_summary

    def info(flags: str) -> str:
        return f"processor\t: 0\nmodel name\t: Some CPU 9000\nflags\t\t: fpu sse2 {flags}\n\n"

    assert cpu_summary(info("avx2 avx512f avx512_vnni")).endswith("int8 kernels use AVX-512 VNNI")
    assert cpu_summary(info("avx2 avx_vnni")).endswith("int8 kernels use AVX-VNNI")
    assert cpu_summary(info("avx avx2")).endswith("int8 kernels use AVX2")
    assert "no AVX2" in cpu_summary(info("avx"))
    assert cpu_summary(info("avx2")).startswith("Some CPU 9000, ")
    assert "cores;" in cpu_summary("")  # no /proc/cpuinfo (not Linux): still a line
