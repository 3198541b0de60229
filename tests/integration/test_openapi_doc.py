"""docs/openapi.json is the document the server serves."""

from __future__ import annotations

from pathlib import Path

from luminary.server._openapi import render

DOC = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_the_committed_openapi_document_is_current() -> None:
    assert DOC.read_text() == render(), (
        "docs/openapi.json is out of date: regenerate it with "
        "`python -m luminary.server._openapi > docs/openapi.json`"
    )
