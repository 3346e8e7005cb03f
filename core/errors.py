"""The Oz error catalog, one exception type, and its problem+json rendering.

Every failure that a user can see — an HTTP error, a run's ``status_message``, a Slack or
Linear explanation — is an :class:`OzError` carrying one catalog code.  Keeping the catalog
in one table means the HTTP status, retryability and FAILED-vs-ERROR mapping can never drift
apart between the API and the runner.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    """Machine-readable codes from the Oz error catalog (``shared/reference/errors.md``)."""

    INSUFFICIENT_CREDITS = "insufficient_credits"
    FEATURE_NOT_AVAILABLE = "feature_not_available"
    EXTERNAL_AUTHENTICATION_REQUIRED = "external_authentication_required"
    NOT_AUTHORIZED = "not_authorized"
    INVALID_REQUEST = "invalid_request"
    RESOURCE_NOT_FOUND = "resource_not_found"
    BUDGET_EXCEEDED = "budget_exceeded"
    INTEGRATION_DISABLED = "integration_disabled"
    INTEGRATION_NOT_CONFIGURED = "integration_not_configured"
    OPERATION_NOT_SUPPORTED = "operation_not_supported"
    ENVIRONMENT_SETUP_FAILED = "environment_setup_failed"
    CONTENT_POLICY_VIOLATION = "content_policy_violation"
    CONFLICT = "conflict"
    AUTHENTICATION_REQUIRED = "authentication_required"
    RESOURCE_UNAVAILABLE = "resource_unavailable"
    INTERNAL_ERROR = "internal_error"
    INFRASTRUCTURE_TIMEOUT = "infrastructure_timeout"
    AGENT_PROCESS_FAILED = "agent_process_failed"


@dataclass(frozen=True)
class CatalogEntry:
    """How one code behaves: HTTP status, whether a retry can help, the run state it ends in."""

    status: int
    retryable: bool
    platform: bool
    """True for Warp-side (platform) errors: the run ends ``ERROR`` rather than ``FAILED``."""
    title: str


CATALOG: dict[ErrorCode, CatalogEntry] = {
    ErrorCode.INSUFFICIENT_CREDITS: CatalogEntry(
        403, False, False, "The principal billed for this run has no remaining credits."
    ),
    ErrorCode.FEATURE_NOT_AVAILABLE: CatalogEntry(403, False, False, "This feature is not available on your plan."),
    ErrorCode.EXTERNAL_AUTHENTICATION_REQUIRED: CatalogEntry(
        401, False, False, "An external account must be connected before this can run."
    ),
    ErrorCode.NOT_AUTHORIZED: CatalogEntry(403, False, False, "You do not have permission for this operation."),
    ErrorCode.INVALID_REQUEST: CatalogEntry(400, False, False, "The request contains invalid or missing parameters."),
    ErrorCode.RESOURCE_NOT_FOUND: CatalogEntry(404, False, False, "The requested resource was not found."),
    ErrorCode.BUDGET_EXCEEDED: CatalogEntry(403, False, False, "The spending budget limit has been reached."),
    ErrorCode.INTEGRATION_DISABLED: CatalogEntry(
        403, False, False, "This integration is disabled. Please enable it in Oz."
    ),
    ErrorCode.INTEGRATION_NOT_CONFIGURED: CatalogEntry(400, False, False, "The integration is not configured."),
    ErrorCode.OPERATION_NOT_SUPPORTED: CatalogEntry(
        422, False, False, "This operation is not supported for this resource."
    ),
    ErrorCode.ENVIRONMENT_SETUP_FAILED: CatalogEntry(500, False, False, "Environment setup failed."),
    ErrorCode.CONTENT_POLICY_VIOLATION: CatalogEntry(
        403, False, False, "Unable to start cloud agent. Please try again or contact support if the issue persists."
    ),
    ErrorCode.CONFLICT: CatalogEntry(409, True, False, "The request conflicts with the current state of the resource."),
    ErrorCode.AUTHENTICATION_REQUIRED: CatalogEntry(
        401, False, True, "Your API key is invalid or has expired. Please generate a new key and try again."
    ),
    ErrorCode.RESOURCE_UNAVAILABLE: CatalogEntry(
        500, True, True, "A required resource is temporarily unavailable. Try again later."
    ),
    ErrorCode.INTERNAL_ERROR: CatalogEntry(
        500, True, True, "An unexpected error occurred. Please try again later. If the issue persists, contact support."
    ),
    ErrorCode.INFRASTRUCTURE_TIMEOUT: CatalogEntry(
        500, False, True, "The task exceeded the maximum allowed runtime and was terminated."
    ),
    ErrorCode.AGENT_PROCESS_FAILED: CatalogEntry(500, False, True, "The agent process exited unexpectedly."),
}

PROBLEM_CONTENT_TYPE = "application/problem+json"
_EXTRA_FIELDS = {
    ErrorCode.EXTERNAL_AUTHENTICATION_REQUIRED: ("provider", "auth_url", "inaccessible_repos"),
    ErrorCode.INTEGRATION_NOT_CONFIGURED: ("integration_name", "setup_url"),
}


def problem_type(code: ErrorCode) -> str:
    """The ``type`` URI Oz uses: the catalog page of the code, dashes for underscores."""
    return f"/reference/api-and-sdk/troubleshooting/errors/{code.value.replace('_', '-')}/"


def code_of_problem_type(type_uri: str) -> str:
    """The catalog code a problem document's ``type`` names (:func:`problem_type` read back);
    empty when it names none."""
    return type_uri.rstrip("/").rsplit("/", 1)[-1].replace("-", "_")


class OzError(Exception):
    """A catalog error: code, optional human detail, and the code's extra fields.

    ``title`` overrides the catalog's generic title when the situation has a sharper one
    (``"Setup command 'make' exited with 2"``); ``status`` overrides the HTTP status only
    where the catalog allows two (``resource_unavailable`` is 429 or 500).
    """

    def __init__(
        self,
        code: ErrorCode,
        detail: str | None = None,
        *,
        title: str | None = None,
        status: int | None = None,
        **extras: Any,
    ) -> None:
        self.code = ErrorCode(code)
        self.entry = CATALOG[self.code]
        self.title = title or self.entry.title
        self.detail = detail
        self.status = status or self.entry.status
        allowed = _EXTRA_FIELDS.get(self.code, ())
        unknown = set(extras) - set(allowed)
        if unknown:
            raise TypeError(f"{self.code} takes no extra field(s) {sorted(unknown)}")
        self.extras = {k: v for k, v in extras.items() if v is not None}
        super().__init__(self.message)

    @property
    def retryable(self) -> bool:
        return self.entry.retryable

    @property
    def run_state(self) -> str:
        """The terminal state a run takes when it fails with this error."""
        return "ERROR" if self.entry.platform else "FAILED"

    @property
    def message(self) -> str:
        """``title`` or ``"title (detail)"`` — the ``error`` field of the problem document."""
        return f"{self.title} ({self.detail})" if self.detail else self.title

    def problem(self, instance: str, trace_id: str | None = None) -> dict[str, Any]:
        """Render as an RFC 7807 problem document with Oz's extra members."""
        doc: dict[str, Any] = {
            "type": problem_type(self.code),
            "title": self.title,
            "status": self.status,
        }
        if self.detail:
            doc["detail"] = self.detail
        doc["instance"] = instance
        doc["error"] = self.message
        doc["retryable"] = self.retryable
        if trace_id:
            doc["trace_id"] = trace_id
        doc.update(self.extras)
        return doc


def not_found(kind: str, uid: str) -> OzError:
    """The one wording for a missing (or invisible) resource, so callers cannot probe."""
    return OzError(ErrorCode.RESOURCE_NOT_FOUND, f"{kind} {uid} not found")


def invalid(detail: str) -> OzError:
    return OzError(ErrorCode.INVALID_REQUEST, detail)
