"""``/api/v1/agent/runs``: create, list, retrieve, cancel, follow up."""

from __future__ import annotations

from aiohttp import web
from multidict import MultiMapping
from sqlalchemy.orm import Session

from bots.api.context import principal
from bots.api.middleware import read_json
from bots.web import QUEUE, SETTINGS, STORE, VAULT, blocking, reading
from core import run_items, runs
from core.errors import ErrorCode, OzError, invalid
from core.models import Origin, Principal, RunSourceType
from core.models.wire import FollowupRequest, RunAgentRequest, RunAgentResponse, RunItem, RunListQuery

IDEMPOTENCY_HEADER = "Idempotency-Key"


def json_response(model: object, status: int = 200) -> web.Response:
    return web.json_response(model.wire(), status=status)  # type: ignore[attr-defined]


CLIENT_SOURCES = {"API": RunSourceType.API, "GITHUB_ACTION": RunSourceType.GITHUB_ACTION}
"""Sources a client may declare (``X-Oz-Source``); integrations' own sources cannot be claimed."""


def _origin(request: web.Request) -> Origin:
    declared = request.headers.get("X-Oz-Source", "API").upper()
    if declared not in CLIENT_SOURCES:
        raise invalid(f"X-Oz-Source must be one of {', '.join(CLIENT_SOURCES)}")
    if declared == "GITHUB_ACTION" and principal(request).is_human:
        # Such runs cannot be cancelled through the API: only the Action's agent key may say so.
        raise OzError(ErrorCode.NOT_AUTHORIZED, "only an agent API key (the GitHub Action's) may declare GITHUB_ACTION")
    trigger_url = request.headers.get("X-Oz-Trigger-Url")
    if trigger_url and not trigger_url.startswith(("https://", "http://")):
        raise invalid("X-Oz-Trigger-Url must be an http(s) URL")
    return Origin(source=CLIENT_SOURCES[declared], trigger_url=trigger_url)


def _idempotency_key(request: web.Request) -> str | None:
    """A client's key, in a namespace of its own: it can never name the run a Slack message or a
    Linear session made (theirs are ``slack:…``, ``linear:…``)."""
    key = request.headers.get(IDEMPOTENCY_HEADER)
    return None if key is None else f"api:{key}"


async def create_run(request: web.Request) -> web.Response:
    body = RunAgentRequest.model_validate(await read_json(request))
    origin = _origin(request)
    created = await blocking(
        request,
        runs.create,
        request.app[STORE],
        request.app[QUEUE],
        principal(request),
        body,
        source=origin.source,
        origin=origin,
        idempotency_key=_idempotency_key(request),
        vault=request.app[VAULT],
        agent_limit=request.app[SETTINGS].agent_limit,
    )
    run = created.run
    response = RunAgentResponse(
        run_id=run.run_id, task_id=run.run_id, state=run.state, at_capacity=not created.enqueued
    )
    return json_response(response, status=200)


def list_query(params: MultiMapping[str]) -> RunListQuery:
    """Repeated ``state`` values and ``metadata[key]=value`` pairs, as the SDK encodes them."""
    data: dict[str, object] = {}
    metadata: dict[str, str] = {}
    for key in set(params.keys()):
        if key.startswith("metadata[") and key.endswith("]"):
            metadata[key[len("metadata[") : -1]] = params[key]
        elif key in ("state", "state[]"):
            data["state"] = [v for value in params.getall(key) for v in value.split(",") if v]
        else:
            data[key] = params[key]
    data["metadata"] = metadata
    return RunListQuery.model_validate(data)


async def list_runs(request: web.Request) -> web.Response:
    query = list_query(request.query)
    return json_response(await reading(request, run_items.list_runs, principal(request), query))


def _retrieve(session: Session, who: Principal, run_id: str) -> RunItem:
    return run_items.render_item(session, runs.visible_run(session, who, run_id))


async def get_run(request: web.Request) -> web.Response:
    run_id = request.match_info["run_id"]
    return json_response(await reading(request, _retrieve, principal(request), run_id))


async def cancel_run(request: web.Request) -> web.Response:
    run_id = request.match_info["run_id"]
    run = await blocking(request, runs.cancel, request.app[STORE], request.app[QUEUE], principal(request), run_id)
    # The SDK types the answer as a bare string: the id of the cancelled run.
    return web.Response(text=run.run_id, content_type="text/plain")


async def submit_followup(request: web.Request) -> web.Response:
    run_id = request.match_info["run_id"]
    body = FollowupRequest.model_validate(await read_json(request))
    run = await blocking(
        request, runs.followup, request.app[STORE], request.app[QUEUE], principal(request), run_id, body
    )
    return web.json_response({"run_id": run.run_id, "state": run.state.value})
