"""The first-run demo: a seeded demo workspace, simulated customers, a stand-in for Twilio and Meta.

Nothing here runs unless asked for: `python -m server demo` (`make demo`), `DEMO=1` with
`python -m server run`, or `python -m server simulate`.

- `content`: what the demo workspace holds (team, channels, CRM records, conversation scripts).
- `seed`: creates it once, through the domain layer, in one transaction; finds it again later.
- `standin`: a local stand-in for Twilio's and Meta's APIs, so demo replies never leave the host.
- `simulate`: simulated customers writing through the real signed webhooks.
- `run`: `python -m server demo`, which puts the four together.
"""
