"""Run artifacts: pull requests, plans and files the agent produced.

Files are served through short-lived signed links (as Oz does) so a browser or ``curl``
can fetch them without the caller's API key.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from core.errors import not_found
from core.models import Principal
from core.models.wire import FileArtifactResponse
from core.runs import visible_run
from core.signing import sign
from core.store.tables import ArtifactRow

DOWNLOAD_PATH = "/api/v1/agent/artifacts/{uid}/download"


def artifact_response(
    session: Session, principal: Principal, uid: str, public_url: str, key: bytes
) -> FileArtifactResponse:
    row = session.get(ArtifactRow, uid)
    if row is None:
        raise not_found("artifact", uid)
    visible_run(session, principal, row.run_id)
    if row.artifact_type != "FILE" or row.content is None:
        raise not_found("downloadable artifact", uid)
    link, expires_at = sign(key, DOWNLOAD_PATH.format(uid=uid))
    data = row.data
    return FileArtifactResponse.model_validate(
        {
            "artifact_uid": uid,
            "created_at": row.created_at,
            "data": {
                "content_type": data.get("mime_type", "application/octet-stream"),
                "download_url": public_url + link,
                "expires_at": expires_at,
                "filename": data.get("filename", uid),
                "filepath": data.get("filepath"),
                "description": data.get("description"),
                "size_bytes": len(row.content),
                "title": data.get("title"),
            },
        }
    )


def download(session: Session, uid: str) -> tuple[str, str, bytes]:
    row = session.get(ArtifactRow, uid)
    if row is None or row.content is None:
        raise not_found("artifact", uid)
    return row.data.get("filename", uid), row.data.get("mime_type", "application/octet-stream"), row.content
