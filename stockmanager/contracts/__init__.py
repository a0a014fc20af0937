"""Contracts defined once and shared: value rules and request validation for every HTTP API,
typed event payloads, and the cross-schema contracts (stock function, outbox, users directory).

Services and the gateway import from here; nothing here imports a service.
"""
