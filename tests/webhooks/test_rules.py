"""Pure rules of the webhooks service: address checks, URL form, backoff, signing, secrets."""

from __future__ import annotations

import asyncio
import ipaddress
from datetime import UTC, datetime

import pytest
from cryptography.fernet import Fernet, InvalidToken
from standardwebhooks import Webhook, WebhookVerificationError

from services.webhooks.delivery import retry_delay
from services.webhooks.settings import WebhooksSettings
from services.webhooks.signing import new_secret, secret_cipher, signature_header, signing_key
from services.webhooks.targets import (
    GuardedResolver,
    TargetRefused,
    parse_target,
    refused_address,
    resolve_checked,
)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fd00:ec2::254",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "100.100.100.200",
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert refused_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700::1111"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert not refused_address(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/x",
        "javascript:alert(1)",
        "http://",
        "https://user:pw@example.com/",
        "https://example.com/a b",
        "https://example.com:0/",
        "https://example.com:99999/",
        "https://example.com/#fragment",
        "https://example.com/" + "a" * 2001,
    ],
)
def test_malformed_urls_are_refused(url: str) -> None:
    with pytest.raises(TargetRefused):
        parse_target(url)


def test_literal_and_named_loopback_are_refused_unless_allowed() -> None:
    async def check() -> None:
        for host in ("127.0.0.1", "::1", "localhost"):
            with pytest.raises(TargetRefused):
                await resolve_checked(host, 80, allow_private=False)
            assert await resolve_checked(host, 80, allow_private=True)
        with pytest.raises(OSError):  # what aiohttp expects from a resolver
            await GuardedResolver(allow_private=False).resolve("localhost", 80)

    asyncio.run(check())


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    settings = WebhooksSettings(
        webhooks_retry_base_seconds=10, webhooks_retry_max_delay_seconds=3600
    )
    for attempts, full in ((1, 10), (2, 20), (3, 40), (12, 3600), (500, 3600)):
        delays = [retry_delay(settings, attempts) for _ in range(200)]
        assert all(full / 2 <= d <= full for d in delays)
        assert len(set(delays)) > 1  # jittered


def test_signatures_verify_with_the_standard_library_for_each_secret() -> None:
    old, new = new_secret(), new_secret()
    assert old.startswith("whsec_") and old != new
    body = b'{"id":"e1","type":"sale.created"}'
    now = int(datetime.now(UTC).timestamp())
    header = signature_header([signing_key(new), signing_key(old)], "e1", now, body)
    headers = {
        "webhook-id": "e1",
        "webhook-timestamp": str(now),
        "webhook-signature": header,
    }
    assert len(header.split()) == 2
    for secret in (new, old):
        assert Webhook(secret).verify(body, headers)["type"] == "sale.created"
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)


def test_secrets_are_encrypted_with_a_dedicated_or_derived_key() -> None:
    internal = "x" * 40
    derived = secret_cipher("", internal)
    token = derived.encrypt(b"whsec_abc")
    assert secret_cipher("", internal).decrypt(token) == b"whsec_abc"
    with pytest.raises(InvalidToken):
        secret_cipher("", "y" * 40).decrypt(token)
    key = Fernet.generate_key().decode()
    assert secret_cipher(key, internal).decrypt(Fernet(key).encrypt(b"s")) == b"s"
