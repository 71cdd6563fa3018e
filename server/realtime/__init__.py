"""Realtime delivery: the publish seam, fan-out between nodes, websocket connections."""
