"""The browser client in headless Chromium: two agents working one inbox live, and the rest."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.browser import (
    ROOT,
    HeldRequests,
    Watched,
    expect,
    launch_browser,
    screenshot,
    section,
    sign_in,
    web_server,
)
from tests.support import Api, LiveServer, Member, Team, wait_for

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
HOSTILE = "<img src=x onerror=alert(1)><b>bold</b>"
WEB = ROOT / "web"
README_SHOT = ROOT / "docs" / "screenshot-inbox.png"


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = web_server(tmp_path_factory.mktemp("web"))
    live.start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch_browser()


@pytest.fixture
def web_api(web: LiveServer) -> Iterator[Api]:
    client = Api(web)
    yield client
    client.close()


@pytest.fixture
def contexts(browser: Any) -> Iterator[Any]:
    """New browser contexts (separate cookies: separate users), closed after the test."""
    made: list[Any] = []

    def new(**kwargs: Any) -> Any:
        kwargs.setdefault("viewport", {"width": 1440, "height": 900})
        context = browser.new_context(**kwargs)
        made.append(context)
        return context

    yield new
    for context in made:
        context.close()


def inbound(team: Team, integration: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """A customer writes (signed webhook); returns the webhook's answer."""
    r = team.inbound(integration, **kwargs)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def unread(api: Api, token: str, conv_id: int) -> int:
    count: int = api.get(f"/api/v1/conversations/{conv_id}", token).json()["unread_count"]
    return count


def admin_at_inbox(
    web: LiveServer, web_api: Api, context: Any
) -> tuple[Team, dict[str, Any], Watched]:
    """A new team with one channel, its admin signed in (in `context`) with the inbox loaded."""
    team = web_api.signup()
    chat = team.install()
    a = sign_in(context, web.url, team.admin.email)
    expect(a.page.locator(".list-status")).to_contain_text("No one is waiting")
    return team, chat, a


def admin_and_bob(web: LiveServer, web_api: Api, contexts: Any) -> tuple[Member, Any, Watched]:
    """A new team of Ada (admin) and Bob (agent): Bob, and Ada's browser context and page."""
    team = web_api.signup(name="Ada Admin")
    bob = team.add("bob")
    context = contexts()
    return bob, context, sign_in(context, web.url, team.admin.email)


def no_harm(*watched: Watched) -> None:
    for w in watched:
        assert w.errors == [], f"uncaught errors in the page: {w.errors}"
        assert w.dialogs == [], f"the page opened dialogs: {w.dialogs}"


# Without a browser ---------------------------------------------------------------------------


def test_security_headers_on_the_web_client(web: LiveServer) -> None:
    for path in ("/", "/assets/app.js", "/assets/styles.css"):
        r = httpx.get(web.url + path)
        assert r.status_code == 200, path
        assert r.headers["content-security-policy"] == CSP
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"
    assert (
        httpx.get(web.url + "/assets/app.js").headers["content-type"].startswith("text/javascript")
    )


def test_the_client_never_builds_html_from_strings() -> None:
    html = (WEB / "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "inline script in index.html"
    assert " style=" not in html
    for path in sorted(WEB.rglob("*.js")):
        code = path.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in code, f"{path.relative_to(ROOT)} uses {sink}"
        assert ".style." not in code and "setAttribute('style'" not in code, path


# Accounts ------------------------------------------------------------------------------------


def test_sign_up_install_a_channel_sign_out_and_sign_in(
    web: LiveServer, web_api: Api, contexts: Any
) -> None:
    watched = Watched(contexts().new_page())
    page = watched.page
    page.goto(web.url + "/")
    page.get_by_role("link", name="Create an account").click()
    email = f"founder-{os.getpid()}-{id(page)}@example.com"
    page.get_by_label("Company").fill("Northwind")
    page.get_by_label("Your name").fill("Nora Founder")
    page.get_by_label("Work email").fill(email)
    page.get_by_label("Password").fill("short")
    page.get_by_role("button", name="Create account").click()
    expect(page.locator(".field-error[data-field='password']")).to_be_visible()

    page.get_by_label("Password").fill("correct horse")
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", name="Unassigned")).to_be_visible()
    expect(page.locator(".me-button")).to_contain_text("Nora Founder")
    expect(page.locator(".list-status")).to_contain_text("No one is waiting")

    # The admin installs a channel: its webhook URL is shown, and a message to it arrives live.
    page.get_by_role("link", name="Settings").click()
    page.get_by_role("link", name="Messaging integrations").click()
    install = page.locator(".install-form")
    install.get_by_label("Provider").select_option("api")
    install.get_by_label("Name").fill("Web chat")
    install.get_by_role("button", name="Generate").click()
    secret = install.get_by_label("Webhook secret").input_value()
    install.get_by_role("button", name="Install").click()
    webhook = install.locator(".install-done").get_by_label("Webhook URL")
    expect(webhook).to_have_value(re.compile(re.escape(web.url) + r"/webhooks/api/\d+$"))
    integration_id = int(webhook.input_value().rsplit("/", 1)[1])
    expect(page.locator(".integration-card")).to_contain_text("Web chat")
    page.get_by_role("link", name=re.compile("^Unassigned")).click()
    assert web_api.inbound(integration_id, secret, name="Sam", text="First!").status_code == 200
    expect(page.locator(".conv-item", has_text="Sam")).to_contain_text("First!")

    page.get_by_role("button", name="Account menu").click()
    page.get_by_role("menuitem", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in to your inbox")).to_be_visible()
    assert not [c for c in page.context.cookies() if c["name"] == "switchboard_session"]

    page.get_by_label("Work email").fill(email)
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Wrong email or password")
    page.get_by_label("Password").fill("correct horse")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".me-button")).to_contain_text("Nora Founder")


# The shared inbox, live ----------------------------------------------------------------------


def test_two_agents_share_one_live_inbox(web: LiveServer, web_api: Api, contexts: Any) -> None:
    team = web_api.signup(name="Ada Admin")
    bob = team.add("bob")
    chat = team.install(shared_with=["bob"])
    a = sign_in(contexts(), web.url, team.admin.email)
    b = sign_in(contexts(), web.url, bob.email)
    pa, pb = a.page, b.page
    pb.get_by_role("link", name=re.compile("Assigned to me")).click()
    expect(pb.locator(".list-status")).to_contain_text("Nothing assigned to you")

    # A customer writes: both agents see it in Unassigned, unread, without reloading.
    inbound(team, chat, contact="c-1", name="Carla", text="Is the blue sofa in stock?")
    carla = pa.locator(".conv-item", has_text="Carla")
    expect(carla).to_contain_text("Is the blue sofa in stock?")
    for page in (pa, pb):
        expect(section(page, "unassigned").locator(".section-count")).to_have_text("1")
        expect(section(page, "unassigned").locator(".badge")).to_have_text("1")

    # A opens it: the history shows, and it is read.
    carla.click()
    expect(pa.locator(".conv-title")).to_have_text("Carla")
    expect(pa.locator(".msg-in .msg-text")).to_have_text(["Is the blue sofa in stock?"])
    expect(section(pa, "unassigned").locator(".badge")).to_be_hidden()
    expect(section(pb, "unassigned").locator(".badge")).to_have_text("1")  # B has not read it
    conv_id = int(pa.url.rsplit("/", 1)[1])
    wait_for(lambda: unread(web_api, team.admin.token, conv_id) == 0)
    assert unread(web_api, bob.token, conv_id) == 1

    # The assign menu: Escape closes it and gives focus back.
    trigger = pa.get_by_role("button", name="Assign this conversation")
    trigger.click()
    menu = pa.locator(".assign-menu")
    expect(menu).to_be_visible()
    pa.keyboard.press("Escape")
    expect(menu).to_be_hidden()
    expect(trigger).to_be_focused()

    # A assigns it to B: it moves to B's "Assigned to me" and A's "Assigned to others", live.
    trigger.click()
    menu.get_by_role("menuitemradio", name=re.compile("Bob")).click()
    expect(pa.locator(".assign-trigger")).to_contain_text("Assigned to Bob")
    expect(pb.locator(".conv-item", has_text="Carla")).to_be_visible()
    expect(section(pb, "mine").locator(".section-count")).to_have_text("1")
    expect(section(pa, "others").locator(".section-count")).to_have_text("1")
    expect(section(pa, "unassigned").locator(".section-count")).to_have_text("0")
    pa.get_by_role("link", name=re.compile("Assigned to others")).click()
    expect(pa.locator(".conv-item", has_text="Carla")).to_contain_text("Bob")

    # B goes unavailable: A sees Bob disabled in the assign menu, and so in the team panel.
    pb.get_by_role("button", name=re.compile("^Available")).click()
    expect(pb.locator(".availability")).to_have_attribute("aria-pressed", "false")
    pa.locator(".conv-item", has_text="Carla").click()
    pa.locator(".assign-trigger").click()
    bob_option = pa.locator(".assign-menu").get_by_role("menuitemradio", name=re.compile("Bob"))
    expect(bob_option).to_be_disabled()
    expect(bob_option).to_contain_text("Unavailable")
    pa.keyboard.press("Escape")
    pa.get_by_role("link", name="Team").click()
    bob_card = pa.locator(f'.member-card[data-user-id="{bob.id}"]')
    expect(bob_card).to_contain_text("Unavailable")
    expect(bob_card).to_contain_text("1 open conversation")
    bob_card.get_by_role("link", name=re.compile("Carla")).click()  # a #/conversations/{id} link
    expect(pa.locator(".conv-title")).to_have_text("Carla")

    # End the conversation, then reopen it: both inboxes follow.
    pa.get_by_role("button", name="End conversation").click()
    expect(pa.locator(".conv-subtitle")).to_contain_text("Closed")
    expect(section(pb, "closed").locator(".section-count")).to_have_text("1")
    expect(section(pb, "mine").locator(".section-count")).to_have_text("0")
    expect(pb.locator(".conv-item", has_text="Carla")).to_have_count(0)
    pa.get_by_role("button", name="Reopen").click()
    expect(pa.locator(".conv-subtitle")).to_contain_text("Open")
    expect(section(pb, "mine").locator(".section-count")).to_have_text("1")
    expect(pb.locator(".conv-item", has_text="Carla")).to_be_visible()

    # Hostile text is shown as text and runs nothing.
    inbound(team, chat, contact="c-1", name="Carla", text=HOSTILE)
    expect(pa.locator(".msg-in .msg-text").last).to_have_text(HOSTILE)
    expect(pb.locator(".conv-item", has_text="Carla")).to_contain_text(HOSTILE)
    for page in (pa, pb):
        assert page.locator(".messages b, .messages img, .conv-list b, .conv-list img").count() == 0

    # A replies with Enter: the reply shows its delivery status, and B sees it in the list.
    composer = pa.get_by_role("textbox", name="Reply")
    composer.fill("Yes, it is. Shall I reserve one?")
    composer.press("Enter")
    reply = pa.locator(".msg-out").last
    expect(reply.locator(".msg-text")).to_have_text("Yes, it is. Shall I reserve one?")
    expect(reply.locator(".msg-status")).to_have_text("Sent")
    expect(composer).to_have_value("")
    expect(pb.locator(".conv-item", has_text="Carla")).to_contain_text("You: Yes, it is.")

    # Only the installer may delete: B, who did not install the channel, is not offered it.
    pb.locator(".conv-item", has_text="Carla").click()
    expect(pb.locator(".conv-title")).to_have_text("Carla")
    expect(pb.get_by_role("button", name="More actions")).to_be_hidden()
    expect(pa.get_by_role("button", name="More actions")).to_be_visible()

    screenshot(pa, "inbox-two-agents.png")
    no_harm(a, b)


def test_failed_reply_shows_the_providers_error(
    web: LiveServer, web_api: Api, contexts: Any
) -> None:
    team = web_api.signup()
    # A callback that answers 405: the reply fails at once, with that error.
    chat = team.install(callback_url=f"{web.url}/healthz")
    inbound(team, chat, contact="c-9", name="Dora", text="Hello?")
    a = sign_in(contexts(), web.url, team.admin.email)
    a.page.locator(".conv-item", has_text="Dora").click()
    composer = a.page.get_by_role("textbox", name="Reply")
    composer.fill("Hi Dora!")
    a.page.get_by_role("button", name="Send").click()
    failed = a.page.locator(".msg-failed")
    expect(failed.locator(".msg-status")).to_have_text("Not delivered")
    expect(failed.locator(".msg-error")).to_contain_text("callback answered 405")
    expect(a.page.locator(".conv-item", has_text="Dora")).to_contain_text("Not delivered")

    # Delete, behind a confirmation: Cancel keeps it, confirming removes it.
    page = a.page
    for confirm in (False, True):
        page.get_by_role("button", name="More actions").click()
        page.get_by_role("menuitem", name="Delete conversation…").click()
        dialog = page.get_by_role("dialog", name="Delete this conversation?")
        expect(dialog).to_be_visible()
        dialog.get_by_role("button", name="Delete conversation" if confirm else "Cancel").click()
        expect(dialog).to_have_count(0)
    expect(page.locator(".conv-item", has_text="Dora")).to_have_count(0)
    expect(section(page, "unassigned").locator(".section-count")).to_have_text("0")
    assert web_api.get("/api/v1/conversations", team.admin.token).json()["items"] == []
    no_harm(a)


def test_history_pages_in_on_scroll_and_links_open_conversations(
    web: LiveServer, web_api: Api, contexts: Any
) -> None:
    team = web_api.signup()
    chat = team.install()
    for n in range(1, 46):
        answer = inbound(team, chat, contact="c-long", name="Lena Long", text=f"Message {n}")
    conv_id = answer["conversation_id"]

    # A link from an email, opened while signed out: sign in, then it opens.
    a = sign_in(contexts(), web.url, team.admin.email, path=f"/#/conversations/{conv_id}")
    page = a.page
    expect(page.locator(".conv-title")).to_have_text("Lena Long")
    texts = page.locator(".msg-text")
    expect(texts.last).to_have_text("Message 45")
    expect(texts).to_have_count(30)  # the newest page only
    page.locator(".history").evaluate("el => { el.scrollTop = 0; }")
    expect(texts).to_have_count(45)
    expect(texts.first).to_have_text("Message 1")
    expect(page.locator(".history-start")).to_be_visible()

    # #/settings/notifications opens the settings; a switch saves at once.
    page.goto(f"{web.url}/#/settings/notifications")
    switch = page.get_by_role("checkbox", name=re.compile("^Email: New message in an unassigned"))
    expect(switch).not_to_be_checked()
    switch.check()
    expect(page.locator(".save-status")).to_have_text("Saved.")
    settings = web_api.get("/api/v1/me/notification-settings", team.admin.token).json()
    assert settings["email"]["message_unassigned"] is True
    no_harm(a)


def test_offline_banner_catching_up_and_live_reordering(
    web: LiveServer, web_api: Api, contexts: Any
) -> None:
    context = contexts()
    team, chat, a = admin_at_inbox(web, web_api, context)
    page = a.page
    banner = page.locator(".banner-offline")
    expect(banner).to_be_hidden()

    context.set_offline(True)
    expect(banner).to_be_visible()
    inbound(team, chat, contact="c-2", name="Omar", text="Written while you were away")
    context.set_offline(False)
    expect(banner).to_be_hidden()
    # Replayed from `since`: no reload.
    expect(page.locator(".conv-item", has_text="Omar")).to_contain_text("Written while you were")
    expect(section(page, "unassigned").locator(".section-count")).to_have_text("1")

    # The list re-orders live: newest activity first.
    names = page.locator(".conv-item .conv-name")
    inbound(team, chat, contact="c-5", name="Pavel", text="Hello from Pavel")
    expect(names).to_have_text(["Pavel", "Omar"])
    inbound(team, chat, contact="c-2", name="Omar", text="Any news?")
    expect(names).to_have_text(["Omar", "Pavel"])
    expect(section(page, "unassigned").locator(".section-count")).to_have_text("2")
    no_harm(a)


def test_bell_lists_notifications_and_opens_their_conversation(
    web: LiveServer, web_api: Api, contexts: Any
) -> None:
    team, chat, a = admin_at_inbox(web, web_api, contexts())
    page = a.page
    bell = page.locator(".bell")
    panel = page.locator(".bell-panel")
    if web_api.get("/api/v1/notifications", team.admin.token).status_code == 404:
        bell.click()
        expect(panel).to_contain_text("not available on this server yet")
        no_harm(a)
        return
    # By default a new message nobody is assigned to notifies on the desktop: live, in the bell.
    inbound(team, chat, contact="c-6", name="Rosa", text="Can I pay by invoice?")
    expect(page.locator(".bell-badge")).to_have_text("1")
    bell.click()
    item = panel.locator(".notification", has_text="Rosa")
    expect(item).to_be_visible()
    item.click()
    expect(page.locator(".conv-title")).to_have_text("Rosa")
    expect(page.locator(".bell-badge")).to_be_hidden()
    no_harm(a)


def test_bell_keeps_what_arrived_live_while_its_list_was_loading(
    web: LiveServer, web_api: Api, contexts: Any
) -> None:
    """The list's answer was read before a notification was made: it must not wipe it out."""
    context = contexts()
    # The start's own load of the list answered first: the only one held is the bell's.
    with context.expect_event("response", lambda r: "/api/v1/notifications?" in r.url):
        team, chat, a = admin_at_inbox(web, web_api, context)
    page = a.page
    bell, badge = page.locator(".bell"), page.locator(".bell-badge")
    panel_list = page.locator(".bell-panel .bell-list")
    expect(panel_list).to_have_attribute("aria-busy", "false")
    held = HeldRequests(page, "**/api/v1/notifications?*")
    bell.click()  # opening the bell reloads its list
    answer = held.first().fetch()  # the server's list now: empty
    assert answer.json()["items"] == []
    expect(panel_list).to_have_attribute("aria-busy", "true")

    inbound(team, chat, contact="c-9", name="Rosa", text="Can I pay by invoice?")
    expect(badge).to_have_text("1")  # pushed live while the list is still on its way
    held.release(answer)
    expect(panel_list).to_have_attribute("aria-busy", "false")
    expect(badge).to_have_text("1")
    expect(panel_list.locator(".notification.unread", has_text="Rosa")).to_be_visible()
    no_harm(a)


def test_team_keeps_presence_pushed_while_its_list_was_loading(
    web: LiveServer, web_api: Api, contexts: Any
) -> None:
    """The users list was read before Bob came online: it must not show him offline again."""
    bob, context, a = admin_and_bob(web, web_api, contexts)
    page = a.page
    page.get_by_role("link", name="Team").click()
    grid = page.locator(".team-grid")
    bob_card = page.locator(f'.member-card[data-user-id="{bob.id}"]')
    expect(bob_card).to_contain_text("Not signed in yet")
    expect(grid).to_have_attribute("aria-busy", "false")
    held = HeldRequests(page, re.compile(r"/api/v1/users\?"))
    # A reconnect's hello reloads the users (presence is not replayed).
    context.set_offline(True)
    expect(page.locator(".banner-offline")).to_be_visible()
    context.set_offline(False)
    answer = held.first().fetch()  # the server's list now: Bob offline
    assert [u["online"] for u in answer.json()["items"] if u["id"] == bob.id] == [False]
    expect(grid).to_have_attribute("aria-busy", "true")

    b = sign_in(contexts(), web.url, bob.email)  # pushed live while the list is on its way
    expect(bob_card).to_contain_text("Online now")
    held.release(answer)
    expect(grid).to_have_attribute("aria-busy", "false")
    expect(bob_card).to_contain_text("Online now")
    no_harm(a, b)


def test_team_loads_again_once_the_connection_is_back(
    web: LiveServer, web_api: Api, contexts: Any
) -> None:
    bob, context, a = admin_and_bob(web, web_api, contexts)
    page = a.page
    expect(page.locator(".list-status")).to_contain_text("No one is waiting")
    failing = re.compile(r"/api/v1/conversations\?section=mine")

    def fail(route: Any) -> None:
        route.abort()

    page.route(failing, fail)
    page.get_by_role("link", name="Team").click()
    grid = page.locator(".team-grid")
    expect(grid).to_contain_text("Could not reach the server")
    page.unroute(failing, fail)
    context.set_offline(True)
    expect(page.locator(".banner-offline")).to_be_visible()
    context.set_offline(False)
    expect(page.locator(f'.member-card[data-user-id="{bob.id}"]')).to_contain_text("0 open")
    expect(grid).to_have_attribute("aria-busy", "false")
    no_harm(a)


def test_narrow_screen_shows_list_then_conversation(
    web: LiveServer, web_api: Api, contexts: Any
) -> None:
    team = web_api.signup()
    chat = team.install()
    inbound(team, chat, contact="c-3", name="Pia", text="Do you have this in green?")
    a = sign_in(contexts(viewport={"width": 390, "height": 820}), web.url, team.admin.email)
    page = a.page
    item = page.locator(".conv-item", has_text="Pia")
    item.click()
    expect(page.locator(".conv-title")).to_have_text("Pia")
    expect(page.locator(".msg-text")).to_have_text(["Do you have this in green?"])
    expect(page.locator(".list-pane")).to_be_hidden()
    screenshot(page, "inbox-narrow.png")
    page.get_by_role("link", name="Back to the list").click()
    expect(item).to_be_visible()
    expect(page.locator(".conversation-pane")).to_be_hidden()
    no_harm(a)


def test_crm_panel_links_a_new_person(web: LiveServer, web_api: Api, contexts: Any) -> None:
    team = web_api.signup()
    chat = team.install()
    inbound(team, chat, contact="c-4", name="Quinn", text="I want 3 desks")
    a = sign_in(contexts(), web.url, team.admin.email)
    page = a.page
    page.locator(".conv-item", has_text="Quinn").click()
    panel = page.locator(".crm-pane")
    expect(panel).to_contain_text("Quinn")
    crm_there = web_api.get("/api/v1/persons", team.admin.token).status_code == 200
    if not crm_there:
        # The CRM endpoints are not deployed: the panel says so and the rest works.
        expect(panel).to_contain_text("not available on this server yet")
        no_harm(a)
        return
    panel.get_by_role("button", name="Link a record").click()
    create = panel.locator(".create-form")
    expect(create.get_by_placeholder("Name")).to_have_value("Quinn")
    create.get_by_placeholder("Email").fill("quinn@example.com")
    create.get_by_role("button", name="Create and link").click()
    record = panel.locator(".records .record")
    expect(record).to_contain_text("Quinn")
    expect(record).to_contain_text("quinn@example.com")
    expect(panel.locator(".note-text").first).to_contain_text("I want 3 desks")
    screenshot(page, "crm-panel.png")
    no_harm(a)


def test_inbox_screenshot(web: LiveServer, web_api: Api, contexts: Any) -> None:
    """A realistic inbox for the README (docs/screenshot-inbox.png) and the test artifacts."""
    team = web_api.signup(name="Ada Lovelace")
    bob, cara = team.add("bob"), team.add("cara")
    web_api.put("/api/v1/me/availability", cara.token, json={"available": False})
    chat = team.install(shared_with=["bob", "cara"], name="Website chat")
    customers = [
        ("c-10", "Grace Hopper", "Do you ship to Berlin?"),
        ("c-11", "Dmitri Ivanov", "Can I get a quote for 12 office chairs?"),
        ("c-12", "Farid Haddad", "Thanks, the delivery arrived today!"),
        ("c-13", "Emma Stone", "Is the oak table available in 180 cm?"),
        ("c-14", "Carla Gomez", "Hi! Is the blue sofa still in stock?"),
    ]
    ids = {}
    for contact, name, text in customers:
        ids[name] = inbound(team, chat, contact=contact, name=name, text=text)["conversation_id"]
    admin = team.admin.token
    web_api.post(
        f"/api/v1/conversations/{ids['Dmitri Ivanov']}/assign", admin, json={"user_id": bob.id}
    )
    web_api.post(
        f"/api/v1/conversations/{ids['Grace Hopper']}/assign",
        admin,
        json={"user_id": team.admin.id},
    )
    carla = ids["Carla Gomez"]
    web_api.post(
        f"/api/v1/conversations/{carla}/messages",
        admin,
        json={"text": "Hi Carla! Yes, we have 4 left in that colour."},
    )
    inbound(
        team,
        chat,
        contact="c-14",
        name="Carla Gomez",
        text="Great. Do you deliver to Rotterdam?\nWe are on the 3rd floor, no lift.",
    )

    a = sign_in(contexts(), web.url, team.admin.email, path=f"/#/conversations/{carla}")
    page = a.page
    expect(page.locator(".msg-text").last).to_contain_text("no lift")
    expect(section(page, "unassigned").locator(".section-count")).to_have_text("3")
    composer = page.get_by_role("textbox", name="Reply")
    composer.fill("We do! Delivery to Rotterdam is free on Tuesdays.")
    composer.press("Enter")
    expect(page.locator(".msg-out .msg-status").last).to_have_text("Sent")
    page.mouse.move(0, 0)
    also = (
        [README_SHOT]
        if os.environ.get("SWITCHBOARD_SCREENSHOTS") or not README_SHOT.exists()
        else []
    )
    shot = screenshot(page, "inbox.png", *also)
    assert shot.stat().st_size > 10_000
    no_harm(a)
