"""Users of the audit tests (created once per session; every test makes its own events)."""

from __future__ import annotations

import pytest

from tests.audit.support import User, create_user
from tests.support.stack import Stack


@pytest.fixture(scope="session")
def root_user(stack: Stack) -> User:
    with stack.root() as client:
        body = client.get("/api/session").json()
    return User(int(body["user_id"]), body["username"], "root", stack.root_password)


@pytest.fixture(scope="session")
def vendedor(stack: Stack, migrated: str) -> User:
    return create_user(stack, migrated, "vendedor", "audv")


@pytest.fixture(scope="session")
def other_vendedor(stack: Stack, migrated: str) -> User:
    return create_user(stack, migrated, "vendedor", "audo")


@pytest.fixture(scope="session")
def admin(stack: Stack, migrated: str) -> User:
    return create_user(stack, migrated, "admin", "auda")
