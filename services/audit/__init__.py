"""Audit service: an append-only trail of every state change, fed by the event stream."""
