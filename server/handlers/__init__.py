"""HTTP, webhook and websocket endpoints. Thin: authenticate, parse, call one action, answer."""
