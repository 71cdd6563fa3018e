"""What the demo workspace holds: a small furniture shop's team, channels, CRM and inbox.

Everything is plain data; `seed` turns it into state through the domain functions. Times are
given as how long before the seeding a step happened, so the history always ends "now".
The demo is recognisable by its account name (`ACCOUNT_NAME`, with "Demo" in it) and by its
users' email domain (`EMAIL_DOMAIN`); the channels' names end in "(demo)".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

ACCOUNT_NAME = "Demo Furniture Co."
EMAIL_DOMAIN = "demo-furniture.test"  # .test is reserved: these addresses reach nobody
# The one password of every demo user; printed when the demo starts and in the README.
PASSWORD = "switchboard-demo"


def ago(*, d: int = 0, h: int = 0, m: int = 0) -> timedelta:
    return timedelta(days=d, hours=h, minutes=m)


# The team -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Teammate:
    key: str
    name: str
    role: str
    # Whether they end the seeding unavailable (greyed out in the assign menu).
    available: bool = True

    @property
    def email(self) -> str:
        return f"{self.key}@{EMAIL_DOMAIN}"


ADMIN = Teammate("maya", "Maya Chen", "admin")
TEAM = (
    ADMIN,
    Teammate("leo", "Leo Park", "agent"),
    Teammate("sofia", "Sofia Rossi", "agent"),
    Teammate("sam", "Sam Okafor", "agent", available=False),
)
# When Sam went away (after his conversations were assigned to him).
SAM_AWAY = ago(h=3)


# The channels: one of each provider, all shared with the whole team --------------------------


@dataclass(frozen=True)
class ChannelSpec:
    provider: str
    name: str
    config: dict[str, str]


API = ChannelSpec("api", "Website chat (demo)", {"webhook_secret": "demo-website-chat-secret"})
WHATSAPP = ChannelSpec(
    "twilio_whatsapp",
    "WhatsApp (demo)",
    {
        "account_sid": "AC" + "de70" * 8,
        "auth_token": "demo-twilio-auth-token",
        "from_number": "+15005550006",  # Twilio's own test number
    },
)
MESSENGER = ChannelSpec(
    "messenger",
    "Facebook page (demo)",
    {
        "page_id": "100000000000042",
        "page_access_token": "demo-page-access-token",
        "app_secret": "demo-meta-app-secret",
        "verify_token": "demo-verify-token",
    },
)
CHANNELS = (API, WHATSAPP, MESSENGER)
# Which secret signs a provider's webhooks (the one the simulator needs).
SIGNING_SECRET = {
    "api": "webhook_secret",
    "twilio_whatsapp": "auth_token",
    "messenger": "app_secret",
}


# CRM records ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PersonSpec:
    key: str
    name: str
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()


@dataclass(frozen=True)
class LeadSpec:
    key: str
    title: str
    person: str | None = None


@dataclass(frozen=True)
class DealSpec:
    key: str
    title: str
    value: float
    currency: str
    person: str | None = None


PERSONS = (
    PersonSpec("grace", "Grace Okoye", ("grace@okoye-studio.example",), ("+44 7700 900123",)),
    PersonSpec("oliver", "Oliver Brown", ("oliver.brown@example.com",), ("+1 415 555 0142",)),
    PersonSpec("lucas", "Lucas Martin", ("lucas.martin@hotel-lumiere.example",)),
    PersonSpec("emma", "Emma Stone", ("emma.stone@example.com",), ("+1 415 555 0188",)),
    PersonSpec("dmitri", "Dmitri Ivanov", ("dmitri@ivanov-design.example",)),
    PersonSpec("tom", "Tom Becker", (), ("+1 415 555 0123",)),
)
LEADS = (
    LeadSpec("fabric-samples", "Fabric samples for the Hotel Lumière lobby", "lucas"),
    LeadSpec("office-fitout", "Office fit-out, 40 desks", "dmitri"),
    LeadSpec("showroom-visit", "Showroom visit in Rotterdam"),
)
DEALS = (
    DealSpec("ergo-chairs", "12 Ergo office chairs", 4680, "EUR", "grace"),
    DealSpec("walnut-bookshelves", "2 walnut bookshelves", 1290, "EUR", "oliver"),
    DealSpec("oak-table", "Oak dining table, 180 cm", 1890, "EUR", "emma"),
    DealSpec("lobby-sofas", "8 Bergen sofas for Hotel Lumière", 18400, "EUR", "lucas"),
)


# Conversations --------------------------------------------------------------------------------


@dataclass(frozen=True)
class In:
    """The customer writes."""

    ago: timedelta
    text: str


@dataclass(frozen=True)
class Out:
    """A teammate replies (having read the conversation first)."""

    ago: timedelta
    by: str
    text: str


@dataclass(frozen=True)
class Assign:
    ago: timedelta
    by: str
    to: str


@dataclass(frozen=True)
class Close:
    ago: timedelta
    by: str


@dataclass(frozen=True)
class Link:
    """`by` links the conversation to a person (`person:<key>`), lead or deal."""

    ago: timedelta
    by: str
    record: str


Step = In | Out | Assign | Close | Link


@dataclass(frozen=True)
class ConversationSpec:
    key: str
    channel: str  # a provider: the demo has one channel of each
    handle: str  # api: the contact id; WhatsApp: E.164; Messenger: the PSID
    name: str
    steps: tuple[Step, ...]


CONVERSATIONS = (
    # Unassigned: new customers nobody has answered yet.
    ConversationSpec(
        "carla",
        "api",
        "web-carla-gomez",
        "Carla Gomez",
        (
            In(ago(m=24), "Hi! Is the blue velvet sofa still in stock?"),
            In(ago(m=23), "And does it come as a 3-seater? Our living room is quite small."),
        ),
    ),
    ConversationSpec(
        "tom",
        "twilio_whatsapp",
        "+14155550123",
        "Tom Becker",
        (
            In(
                ago(m=52),
                "Hello, I ordered a dining table last week (order #4512). "
                "Any news on the delivery date?",
            ),
        ),
    ),
    ConversationSpec(
        "aiko",
        "messenger",
        "6834529000000101",
        "Aiko Tanaka",
        (
            In(
                ago(m=6),
                "Hi there, do you have a showroom in Rotterdam? "
                "I'd love to see the oak collection in person.",
            ),
        ),
    ),
    # Maya's (the admin's): "Assigned to me" when signed in as her.
    ConversationSpec(
        "grace",
        "twilio_whatsapp",
        "+447700900123",
        "Grace Okoye",
        (
            In(
                ago(h=3, m=10), "Hi, can I get a quote for 12 office chairs? The Ergo, in charcoal."
            ),
            Assign(ago(h=3, m=5), "maya", "maya"),
            Out(
                ago(h=3, m=2),
                "maya",
                "Hi Grace, happy to help! The Ergo in charcoal is €390 each, so €4,680 for 12. "
                "When would you need them?",
            ),
            Link(ago(h=3, m=1), "maya", "deal:ergo-chairs"),
            Link(ago(h=3), "maya", "person:grace"),
            In(ago(h=2, m=40), "Ideally before the 15th. Is there a discount for 12?"),
            Out(
                ago(h=2, m=30),
                "maya",
                "We can do 8% off from 10 chairs, and delivery in the city is free. "
                "Shall I send you a formal quote?",
            ),
            In(ago(m=35), "Yes please! To grace@okoye-studio.example, thanks."),
        ),
    ),
    ConversationSpec(
        "dmitri",
        "api",
        "web-dmitri-ivanov",
        "Dmitri Ivanov",
        (
            In(ago(d=1, h=2), "Does the oak table come in 180 cm? And in 200?"),
            Assign(ago(d=1, h=1, m=50), "maya", "maya"),
            Out(
                ago(d=1, h=1, m=45),
                "maya",
                "Hi Dmitri! Both: 180 cm is €1,890 and 200 cm is €2,150, and both are in stock.",
            ),
            In(ago(d=1, h=1, m=30), "Great. Are there matching benches?"),
            Out(
                ago(d=1, h=1, m=20),
                "maya",
                "Yes, the Alder bench comes in both lengths (€420 / €460). "
                "Shall I reserve a table and a bench for you?",
            ),
        ),
    ),
    # Leo's.
    ConversationSpec(
        "farid",
        "messenger",
        "6834529000000102",
        "Farid Haddad",
        (
            In(ago(d=2, h=4), "My order arrived today but one chair leg is scratched :("),
            Assign(ago(d=2, h=3), "maya", "leo"),
            Out(
                ago(d=2, h=2, m=50),
                "leo",
                "So sorry about that, Farid! Could you send us a photo of the scratch? "
                "We'll replace the leg.",
            ),
            In(ago(d=2, h=2, m=30), "Here it is. It's the front left one."),
            Out(
                ago(d=2, h=2),
                "leo",
                "Thanks! A new leg ships tomorrow, no need to send anything back.",
            ),
            In(ago(h=10), "The new leg arrived, but the screws don't fit the old holes. Any idea?"),
        ),
    ),
    ConversationSpec(
        "emma",
        "twilio_whatsapp",
        "+14155550188",
        "Emma Stone",
        (
            In(ago(h=5, m=20), "Is the oak dining table available in 180 cm?"),
            Assign(ago(h=5, m=10), "leo", "leo"),
            Out(ago(h=5, m=5), "leo", "Hi Emma, yes! We have two left in natural oak."),
            In(ago(h=4, m=50), "Great. Can I pay on delivery?"),
        ),
    ),
    # Sofia's.
    ConversationSpec(
        "lucas",
        "api",
        "web-lucas-martin",
        "Lucas Martin",
        (
            In(
                ago(h=6, m=30),
                "Hello, I'm furnishing the lobby of Hotel Lumière. "
                "Could you send fabric samples for the Bergen sofa?",
            ),
            Assign(ago(h=6, m=20), "sofia", "sofia"),
            Link(ago(h=6, m=18), "sofia", "lead:fabric-samples"),
            Out(
                ago(h=6, m=15),
                "sofia",
                "Hi Lucas, with pleasure! Which colours are you thinking of? "
                "The Bergen comes in 14 fabrics.",
            ),
            In(ago(h=5, m=55), "Greens and greys, ideally stain-resistant."),
            Out(
                ago(h=5, m=40),
                "sofia",
                "Perfect: I'll post six samples today, three greens and three greys, "
                "all stain-resistant.",
            ),
            In(
                ago(h=1, m=15),
                "The samples arrived, thank you! We like the moss green. "
                "Could we talk about 8 sofas?",
            ),
        ),
    ),
    ConversationSpec(
        "nadia",
        "messenger",
        "6834529000000103",
        "Nadia Rahman",
        (
            In(ago(d=1, h=3), "What's your return policy for rugs?"),
            Assign(ago(d=1, h=2, m=30), "maya", "sofia"),
            Out(
                ago(d=1, h=2),
                "sofia",
                "Hi Nadia! 30 days, with free pick-up, as long as the rug is unused.",
            ),
            In(ago(h=18), "OK. And if it has already been unrolled?"),
        ),
    ),
    # Sam's, assigned before he went away.
    ConversationSpec(
        "peter",
        "twilio_whatsapp",
        "+447700900145",
        "Peter Novak",
        (
            In(ago(d=2, h=6), "Do you make wardrobes in custom sizes?"),
            Assign(ago(d=2, h=5, m=10), "maya", "sam"),
            Out(
                ago(d=2, h=5),
                "sam",
                "Hi Peter, we do: any width from 60 to 300 cm. What size are you after?",
            ),
            In(ago(h=20), "About 240 cm wide and 2.3 m high. Could you quote that?"),
        ),
    ),
    # Sofia's, closed, and reopened by the customer writing again two hours ago.
    ConversationSpec(
        "marco",
        "api",
        "web-marco-bianchi",
        "Marco Bianchi",
        (
            In(ago(d=3, h=2), "Which sofa fabric is easiest to clean? We have two dogs."),
            Assign(ago(d=3, h=1, m=55), "sofia", "sofia"),
            Out(
                ago(d=3, h=1, m=50),
                "sofia",
                "Hi Marco! Our performance velvet: water-repellent, with machine-washable covers.",
            ),
            In(ago(d=3, h=1, m=30), "Ordered it, thanks!"),
            Close(ago(d=3, h=1, m=20), "sofia"),
            In(ago(h=2), "Hi again, the sofa arrived! Do you have care instructions for it?"),
        ),
    ),
    # Closed.
    ConversationSpec(
        "hannah",
        "api",
        "web-hannah-schmidt",
        "Hannah Schmidt",
        (
            In(ago(d=3, h=5), "Can I change the delivery address of order #4470?"),
            Assign(ago(d=3, h=4, m=50), "leo", "leo"),
            Out(ago(d=3, h=4, m=45), "leo", "Of course! What's the new address?"),
            In(ago(d=3, h=4, m=30), "Kastanienallee 12, Berlin."),
            Out(ago(d=3, h=4, m=20), "leo", "Done: the driver has the new address."),
            In(ago(d=3, h=4, m=15), "Thanks, all sorted!"),
            Close(ago(d=3, h=4, m=10), "leo"),
        ),
    ),
    ConversationSpec(
        "oliver",
        "twilio_whatsapp",
        "+14155550142",
        "Oliver Brown",
        (
            In(ago(d=4, h=2), "I'd like two of the walnut bookshelves. Can you deliver Saturday?"),
            Assign(ago(d=4, h=1, m=50), "maya", "maya"),
            Out(
                ago(d=4, h=1, m=45),
                "maya",
                "Hi Oliver! Saturday works, between 9 and 12. That's €1,290 for both.",
            ),
            Link(ago(d=4, h=1, m=44), "maya", "deal:walnut-bookshelves"),
            In(ago(d=4, h=1, m=30), "Perfect, book it."),
            Out(ago(d=4, h=1, m=20), "maya", "Booked! You'll get a text the evening before."),
            Close(ago(d=4, h=1), "maya"),
        ),
    ),
    ConversationSpec(
        "chloe",
        "messenger",
        "6834529000000104",
        "Chloé Dubois",
        (
            In(ago(d=2, h=1), "Are you open on Sundays?"),
            Out(ago(d=2), "sofia", "Hi Chloé! The showroom is open on Sundays from 11 to 17."),
            In(ago(d=1, h=23, m=50), "Merci !"),
            Close(ago(d=1, h=23, m=45), "sofia"),
        ),
    ),
)
