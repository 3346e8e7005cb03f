"""Our GraphQL documents are valid against Linear's pinned schema."""

from __future__ import annotations

from pathlib import Path

import pytest
from graphql import build_schema, validate

from bots.linear.queries import ALL

SCHEMA = build_schema((Path(__file__).parent / "fixtures" / "linear-schema.graphql").read_text())


@pytest.mark.parametrize("name", sorted(ALL))
def test_document_is_valid_against_the_pinned_schema(name: str) -> None:
    errors = validate(SCHEMA, ALL[name].document)
    assert errors == [], [e.message for e in errors]
