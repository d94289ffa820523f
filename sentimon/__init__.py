"""sentimon: streaming financial sentiment monitor.

Pipeline: ``sentimon.ingest`` (Kafka consumers) -> ``sentimon.model`` (ONNX two-head encoder)
-> ``sentimon.monitor`` (rolling windows, Prometheus metrics) -> ``sentimon.alerts`` (rules,
notifications). ``sentimon.stack`` runs the embedded Kafka/Prometheus/Alertmanager.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sentimon")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
