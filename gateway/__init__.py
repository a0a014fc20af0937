"""The gateway: the only public process. Owns the `/api` route map, sessions, login/logout,
rate limits, the CSRF origin check, request ids, the signed identity for services, and JSON
errors for anything no service answers."""
