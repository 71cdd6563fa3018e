from tests.support import Api, event_log


def test_inbound_message_lands_in_unassigned(api: Api, db) -> None:
    team = api.signup()
    integration = team.install()
    r = team.inbound(integration, text="Hi there")
    assert r.status_code == 200, r.text
    items = api.get("/api/v1/conversations?section=unassigned", team.admin.token).json()["items"]
    assert [c["last_message"]["text"] for c in items] == ["Hi there"]
    types = [e["type"] for e in event_log(db, team.account_id)]
    assert types == ["integration.created", "conversation.created", "message.created"]
