"""Ids no row can have (beyond the database's integers) answer like unknown ids, never 5xx."""

from __future__ import annotations

import base64

import orjson

from tests.support import Api

HUGE = [2**31, 2**63, 10**30]


def test_huge_ids_in_paths_are_404(api: Api) -> None:
    team = api.signup()
    for huge in HUGE:
        for method, path in [
            ("GET", f"/api/v1/conversations/{huge}"),
            ("POST", f"/api/v1/conversations/{huge}/close"),
            ("DELETE", f"/api/v1/integrations/{huge}"),
            ("GET", f"/api/v1/integrations/{huge}"),
            ("POST", f"/webhooks/api/{huge}"),
        ]:
            r = api.request(method, path, team.admin.token)
            assert r.status_code == 404, (method, path, r.status_code, r.text)
            assert r.json()["error"]["code"] == "not_found"


def test_huge_ids_in_bodies_and_cursors_are_422(api: Api) -> None:
    team = api.signup()
    integration = team.install()
    conversation = team.conversation_from(integration)
    r = api.post(
        f"/api/v1/conversations/{conversation['id']}/assign",
        team.admin.token,
        json={"user_id": 2**40},
    )
    assert r.status_code == 422, r.text
    assert "user_id" in r.json()["error"]["fields"]
    forged = base64.urlsafe_b64encode(orjson.dumps([2**40])).decode().rstrip("=")
    for path in ("/api/v1/users", f"/api/v1/conversations/{conversation['id']}/messages"):
        r = api.get(f"{path}?cursor={forged}", team.admin.token)
        assert r.status_code == 422, (path, r.text)
        assert "cursor" in r.json()["error"]["fields"]
