"""Notifications service: per-user notifications from domain events, REST and a live SSE stream."""
