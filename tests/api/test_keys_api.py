"""``/api/v1/keys``: a person lists their keys (an admin: the team's) by prefix only, and
revokes one — which the API then refuses at once."""

from __future__ import annotations

import httpx

from core.accounts import create_account
from core.keys import create_key
from core.store import Store
from tests.live_server import LiveServer


def test_list_and_revoke_keys_over_the_api(gateway: LiveServer, store: Store):
    with store.session() as session:
        lead = create_account(session, "lead@example.com", "acme")
        sam = create_account(session, "sam@example.com", "acme")
        _, lead_key = create_key(session, lead, "ci")
        sam_record, sam_key = create_key(session, sam, "laptop")
    as_sam, as_lead = {"Authorization": f"Bearer {sam_key}"}, {"Authorization": f"Bearer {lead_key}"}

    mine = httpx.get(f"{gateway.api_url}/keys", headers=as_sam)
    assert mine.status_code == 200 and sam_key not in mine.text
    assert [(k["name"], k["prefix"]) for k in mine.json()["keys"]] == [("laptop", sam_key[:7] + "…")]
    assert {k["name"] for k in httpx.get(f"{gateway.api_url}/keys", headers=as_lead).json()["keys"]} == {"ci", "laptop"}

    lead_uid = next(
        k["uid"] for k in httpx.get(f"{gateway.api_url}/keys", headers=as_lead).json()["keys"] if k["name"] == "ci"
    )
    refused = httpx.delete(f"{gateway.api_url}/keys/{lead_uid}", headers=as_sam)
    assert refused.status_code == 403 and refused.headers["content-type"].startswith("application/problem+json")
    assert httpx.delete(f"{gateway.api_url}/keys/nope", headers=as_sam).status_code == 404

    revoked = httpx.delete(f"{gateway.api_url}/keys/{sam_record.uid}", headers=as_lead)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert httpx.get(f"{gateway.api_url}/keys", headers=as_sam).status_code == 401  # refused at once
