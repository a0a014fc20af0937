"""Fixtures of the sales tests: accounts made through the users API, logged in."""

from __future__ import annotations

import pytest

from tests.sales.support import Account, create_account
from tests.support.stack import Stack


@pytest.fixture(scope="module")
def seller(stack: Stack) -> Account:
    return create_account(stack, "vendedor")


@pytest.fixture(scope="module")
def other_seller(stack: Stack) -> Account:
    return create_account(stack, "vendedor")


@pytest.fixture(scope="module")
def admin(stack: Stack) -> Account:
    return create_account(stack, "admin")
