"""Benchmarks of sentimon: model-level throughput (``model_bench``) and the pipeline (``e2e_bench``).

Run from the repository root: ``.venv/bin/python -m benchmarks.model_bench --help``.
Figures and commands are in docs/benchmarks.md.
"""
