"""Secrets: password hashes, tokens, signed cookies, encrypted credentials, HMAC signatures."""
