"""Notifications leaving the server: email through SMTP (desktop ones travel as events)."""
