"""What every webhook front door shares: deliveries are small and signed, so one without its
signature header, or declaring more than 1 MiB, is refused before its body is read."""

from __future__ import annotations

from aiohttp import web

from bots.web import Handler, problem_response
from core.errors import ErrorCode, OzError

WEBHOOK_SIGNATURES = {
    "/slack/events": "X-Slack-Signature",
    "/linear/webhook": "Linear-Signature",
    "/github/webhook": "X-Hub-Signature-256",
}
WEBHOOK_MAX_BYTES = 1024 * 1024


@web.middleware
async def webhook_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Webhook deliveries are small and signed: one without its signature header, or declaring
    more than 1 MiB, is refused before a byte of its body is read; a longer chunked body stops
    at the limit (413) instead of being buffered."""
    header = WEBHOOK_SIGNATURES.get(request.path)
    if header is None or request.method != "POST" or request.match_info.http_exception is not None:
        return await handler(request)  # not a webhook, or one this gateway does not serve (404)
    if not request.headers.get(header):
        missing = f"the {header} header is missing"
        unsigned = OzError(ErrorCode.AUTHENTICATION_REQUIRED, missing, title="Unsigned delivery")
        return problem_response(unsigned, request)
    if (request.content_length or 0) > WEBHOOK_MAX_BYTES:
        limit = f"webhook bodies are at most {WEBHOOK_MAX_BYTES} bytes"
        return problem_response(OzError(ErrorCode.INVALID_REQUEST, limit, status=413), request)
    return await handler(request.clone(client_max_size=WEBHOOK_MAX_BYTES))
