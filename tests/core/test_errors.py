"""The error catalog: statuses, retryability and run states as ``shared/reference/errors.md`` lists them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.errors import CATALOG, ErrorCode, OzError

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "errors.md"


def reference_rows() -> list[tuple[str, str, str, str]]:
    rows = re.findall(r"^\| ([a-z_]+) \| ([0-9 or]+) \| (yes|no) \| (FAILED|ERROR) \|", REFERENCE.read_text(), re.M)
    assert len(rows) == 18
    return rows


@pytest.mark.skipif(not REFERENCE.exists(), reason="shared/ is not beside the checkout")
def test_catalog_matches_the_reference_table():
    for code, status, retryable, state in reference_rows():
        entry = CATALOG[ErrorCode(code)]
        assert str(entry.status) in status.split(" or "), code
        assert entry.retryable is (retryable == "yes"), code
        assert OzError(ErrorCode(code)).run_state == state, code


def test_problem_document_carries_extras_and_the_combined_error():
    error = OzError(
        ErrorCode.EXTERNAL_AUTHENTICATION_REQUIRED,
        "inaccessible repos: acme/backend",
        title="User does not have access to the following repositories in the environment: acme/backend",
        provider="github",
        inaccessible_repos=["acme/backend"],
    )
    doc = error.problem("/api/v1/agent/runs", trace_id="t1")
    assert doc["type"] == "/reference/api-and-sdk/troubleshooting/errors/external-authentication-required/"
    assert doc["error"] == f"{doc['title']} (inaccessible repos: acme/backend)"
    assert doc["provider"] == "github" and doc["inaccessible_repos"] == ["acme/backend"]
    assert "auth_url" not in doc
    assert doc["status"] == 401 and doc["retryable"] is False and doc["trace_id"] == "t1"


def test_extras_are_checked_per_code():
    with pytest.raises(TypeError):
        OzError(ErrorCode.CONFLICT, provider="github")


def test_resource_unavailable_may_be_429():
    assert OzError(ErrorCode.RESOURCE_UNAVAILABLE, status=429).problem("/x")["status"] == 429
