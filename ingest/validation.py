"""The JSON Schemas of the ingest records (package data under ``ingest/schemas/``)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

import jsonschema

SCHEMAS = ("input", "scored")


@cache
def load_schema(name: str) -> dict[str, Any]:
    """The schema ``input`` or ``scored`` as a dict."""
    if name not in SCHEMAS:
        raise ValueError(f"unknown schema {name!r}; one of {', '.join(SCHEMAS)}")
    path = resources.files("sentimon.ingest") / "schemas" / f"{name}.schema.json"
    return dict(json.loads(path.read_text(encoding="utf-8")))


def validator(name: str) -> jsonschema.protocols.Validator:
    """A Draft 2020-12 validator for the schema ``name``."""
    return jsonschema.Draft202012Validator(load_schema(name))


def errors(name: str, doc: Any) -> list[str]:
    """Validation errors of ``doc`` against schema ``name``, as readable lines (empty if valid)."""
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in validator(name).iter_errors(doc)]
