"""Fixtures for the wireless M-Bus tests: the corpus rows copied into
tests/data, and the list of rows we knowingly do not decode."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).resolve().parents[2] / "data"


def load_rows() -> list[dict[str, Any]]:
    with open(DATA / "wmbus_corpus.jsonl") as handle:
        return [json.loads(line) for line in handle if line.strip()]


@pytest.fixture(scope="session")
def rows() -> list[dict[str, Any]]:
    return load_rows()


@pytest.fixture(scope="session")
def unmatched() -> dict[str, Any]:
    with open(DATA / "wmbus_unmatched.json") as handle:
        rows: dict[str, Any] = json.load(handle)["rows"]
    return rows
