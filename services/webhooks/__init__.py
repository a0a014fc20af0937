"""Webhooks service: signed outgoing HTTP deliveries of domain events to subscribed endpoints."""
