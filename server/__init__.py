"""Switchboard: a realtime shared inbox for sales teams."""
