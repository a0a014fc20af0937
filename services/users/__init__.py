"""Users service: accounts, roles, registration and applications, settings, password reset."""
