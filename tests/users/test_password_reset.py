"""The three-step password reset, with a real SMTP server receiving the codes."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from sqlalchemy import text

from stockmanager.db import Database
from tests.support.stack import ApiClient, Stack, unique
from tests.users.conftest import (
    PASSWORD,
    Account,
    MailStack,
    assert_error,
    create_account,
    wait_for,
)

SENT = {"message": "Codigo enviado al correo"}
VERIFIED = {"message": "Código verificado, puedes restablecer tu contraseña"}
DONE = {"message": "Contraseña restablecida exitosamente"}
INVALID = "Código inválido o expirado"
NOT_VERIFIED = "Código no verificado o expirado"
CODE = re.compile(r"\b(\d{6})\b")


def codes_for(mail: MailStack, email: str) -> list[str]:
    found = []
    for message in mail.mailbox.to(email):
        body = message.get_content()
        match = CODE.search(body)
        assert match, body
        found.append(match.group(1))
    return found


def request_code(
    mail: MailStack, client: httpx.Client, email: str, expected: int = 1, *, typed: str = ""
) -> str:
    """Ask for a code (as `typed`, if given) and return it as read from the mail received."""
    response = client.post("/api/users/reset-password", json={"email": typed or email})
    assert response.status_code == 200 and response.json() == SENT
    assert wait_for(lambda: len(codes_for(mail, email)) >= expected, timeout=10)
    return codes_for(mail, email)[-1]


def validate(client: httpx.Client, email: str, code: str) -> httpx.Response:
    return client.post("/api/users/validate-code", json={"email": email, "code": code})


def change(client: httpx.Client, email: str, code: str, password: str) -> httpx.Response:
    return client.post(
        "/api/users/reset-password/change-password",
        json={"email": email, "code": code, "new_password": password},
    )


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


def test_reset_flow_with_code_from_real_mail(
    stack: Stack, mail_stack: MailStack, root_client: ApiClient
) -> None:
    account = create_account(root_client)
    session = stack.login(account.username, PASSWORD)
    with mail_stack.client() as client:
        # The address is matched case-insensitively.
        code = request_code(mail_stack, client, account.email, typed=f"  {account.email.upper()} ")
        message = mail_stack.mailbox.to(account.email)[-1]
        assert message["Subject"] == "Código de recuperación de contraseña"
        assert message["From"] == "StockManager <no-reply@example.com>"

        assert validate(client, account.email, code).json() == VERIFIED
        assert_error(
            change(client, account.email, code, "12345"),
            400,
            "La contraseña debe tener al menos 6 caracteres",
        )
        assert_error(
            change(client, account.email, code, "p" * 129),
            400,
            "La contraseña debe tener como máximo 128 caracteres",
        )
        response = change(client, account.email, code, "after-reset-1")
        assert response.status_code == 200 and response.json() == DONE

        # Used once: the code is gone.
        assert_error(validate(client, account.email, code), 401, INVALID, code="invalid_code")
        assert_error(change(client, account.email, code, "again-reset"), 401, NOT_VERIFIED)

    # The reset ended the sessions opened with the old password.
    assert wait_for(lambda: session.get("/api/session").status_code == 401)
    with stack.login(account.username, "after-reset-1") as fresh:
        assert fresh.get("/api/session").json()["user_id"] == account.id


def test_unknown_and_known_emails_get_the_same_answer(
    mail_stack: MailStack, root_client: ApiClient, admin: tuple[Account, ApiClient]
) -> None:
    known = create_account(root_client)
    disabled = create_account(root_client)
    admin[1].delete(f"/api/users/{disabled.id}")
    unknown = f"{unique('ghost')}@example.com"
    with mail_stack.client() as client:
        answers = [
            client.post("/api/users/reset-password", json={"email": email})
            # The known address last: mail goes out in request order, so once its mail has
            # arrived any (wrong) mail for the others would have arrived before it.
            for email in (unknown, disabled.email, known.email)
        ]
        for response in answers:
            assert (response.status_code, response.json()) == (200, SENT)
        assert wait_for(lambda: len(codes_for(mail_stack, known.email)) == 1, timeout=10)
        # Nothing goes to an unknown or disabled address.
        assert mail_stack.mailbox.to(unknown) == []
        assert mail_stack.mailbox.to(disabled.email) == []
        assert_error(validate(client, unknown, "123456"), 401, INVALID)
        assert_error(change(client, unknown, "123456", "whatever-1"), 401, NOT_VERIFIED)


def test_input_validation(mail_stack: MailStack) -> None:
    with mail_stack.client() as client:
        for body in ({}, {"email": ""}, {"email": 5.5}):
            assert_error(
                client.post("/api/users/reset-password", json=body), 400, "Faltan campos requeridos"
            )
        assert_error(
            client.post("/api/users/reset-password", json={"email": "nope"}),
            400,
            "Formato de correo inválido",
        )
        assert_error(
            client.post("/api/users/validate-code", json={"email": "a@example.com"}),
            400,
            "Faltan campos requeridos",
        )
        assert_error(
            client.post(
                "/api/users/reset-password/change-password",
                json={"email": "a@example.com", "code": "123456"},
            ),
            400,
            "Faltan campos requeridos",
        )
        assert_error(
            client.post(
                "/api/users/validate-code",
                content=b"[1]",
                headers={"content-type": "application/json"},
            ),
            400,
        )


def test_five_wrong_codes_burn_the_code_even_when_racing(
    mail_stack: MailStack, root_client: ApiClient
) -> None:
    almost, burned = create_account(root_client), create_account(root_client)
    with mail_stack.client() as client:
        # Four wrong tries leave the code usable.
        code = request_code(mail_stack, client, almost.email)
        for _ in range(4):
            assert_error(validate(client, almost.email, wrong(code)), 401, INVALID)
        assert validate(client, almost.email, code).json() == VERIFIED

        # Five wrong tries, sent concurrently, burn it: the count is exact under contention.
        code = request_code(mail_stack, client, burned.email)
        with ThreadPoolExecutor(5) as pool:
            statuses = list(
                pool.map(
                    lambda _: validate(client, burned.email, wrong(code)).status_code, range(5)
                )
            )
        assert statuses == [401] * 5
        assert_error(validate(client, burned.email, code), 401, INVALID)
        assert_error(change(client, burned.email, code, "new-password"), 401, NOT_VERIFIED)
        # A new code works again.
        fresh = request_code(mail_stack, client, burned.email, expected=2)
        assert validate(client, burned.email, fresh).json() == VERIFIED


def test_only_the_newest_code_is_valid(mail_stack: MailStack, root_client: ApiClient) -> None:
    account = create_account(root_client)
    with mail_stack.client() as client:
        first = request_code(mail_stack, client, account.email)
        assert validate(client, account.email, first).json() == VERIFIED
        second = request_code(mail_stack, client, account.email, expected=2)
        if second == first:  # one in a million: ask once more
            second = request_code(mail_stack, client, account.email, expected=3)
        assert_error(validate(client, account.email, first), 401, INVALID)
        # The verification of the older code does not carry over to the new one.
        assert_error(change(client, account.email, second, "newest-pass"), 401, NOT_VERIFIED)
        assert validate(client, account.email, second).json() == VERIFIED
        assert change(client, account.email, second, "newest-pass").json() == DONE


def test_change_needs_a_verified_code(mail_stack: MailStack, root_client: ApiClient) -> None:
    account = create_account(root_client)
    with mail_stack.client() as client:
        code = request_code(mail_stack, client, account.email)
        assert_error(change(client, account.email, code, "skipped-step"), 401, NOT_VERIFIED)
        assert validate(client, account.email, code).json() == VERIFIED
        assert change(client, account.email, code, "proper-steps").json() == DONE


async def test_expired_code_is_refused(
    db: Database, mail_stack: MailStack, root_client: ApiClient
) -> None:
    account = create_account(root_client)
    with mail_stack.client() as client:
        code = request_code(mail_stack, client, account.email)
        async with db.transaction() as conn:
            await conn.execute(
                text(
                    "UPDATE users.password_resets SET expires_at = now() - interval '1 second' "
                    "WHERE user_id = :id"
                ),
                {"id": account.id},
            )
        assert_error(validate(client, account.email, code), 401, INVALID)


async def test_codes_are_stored_hashed_and_expire_in_15_minutes(
    db: Database, mail_stack: MailStack, root_client: ApiClient
) -> None:
    account = create_account(root_client)
    with mail_stack.client() as client:
        code = request_code(mail_stack, client, account.email)
    async with db.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT code_hash, extract(epoch FROM expires_at - created_at) AS ttl "
                    "FROM users.password_resets WHERE user_id = :id"
                ),
                {"id": account.id},
            )
        ).one()
    assert code not in row.code_hash and len(row.code_hash) == 64
    assert float(row.ttl) == 15 * 60


def test_requests_are_throttled_per_account(mail_stack: MailStack, root_client: ApiClient) -> None:
    account = create_account(root_client)
    with mail_stack.client() as client:
        for _ in range(6):
            response = client.post("/api/users/reset-password", json={"email": account.email})
            assert response.json() == SENT
        assert wait_for(lambda: len(codes_for(mail_stack, account.email)) == 5, timeout=10)
        # The fifth code is still the valid one, so the sixth request issued no code.
        assert validate(client, account.email, codes_for(mail_stack, account.email)[-1]).json() == (
            VERIFIED
        )
        assert len(codes_for(mail_stack, account.email)) == 5


async def test_reset_events(db: Database, mail_stack: MailStack, root_client: ApiClient) -> None:
    account = create_account(root_client)
    unknown = f"{unique('nobody')}@example.com"
    with mail_stack.client() as client:
        code = request_code(mail_stack, client, account.email)
        client.post("/api/users/reset-password", json={"email": unknown})
        validate(client, account.email, code)
        change(client, account.email, code, "evented-pass")
    async with db.connect() as conn:
        rows = (
            (
                await conn.execute(
                    text(
                        "SELECT payload FROM users.outbox WHERE type LIKE 'user.password_reset%' "
                        "AND (payload->'entity'->>'id' = :id OR payload->'entity'->>'id' IS NULL) "
                        "ORDER BY seq DESC LIMIT 3"
                    ),
                    {"id": str(account.id)},
                )
            )
            .scalars()
            .all()
        )
    done, unknown_request, known_request = rows
    assert known_request["type"] == "user.password_reset_requested"
    assert known_request["data"] == {"email_known": True}
    assert known_request["entity"] == {"type": "user", "id": account.id}
    assert unknown_request["data"] == {"email_known": False}
    assert unknown_request["entity"] == {"type": "user", "id": None}
    assert done["type"] == "user.password_reset"
    assert done["entity"] == {"type": "user", "id": account.id}
    assert code not in json.dumps(rows)


def test_without_smtp_the_development_setting_writes_the_mail_to_the_log(
    log_codes_stack: MailStack, root_client: ApiClient, data_root: Path
) -> None:
    """No SMTP and STOCKMANAGER_LOG_RESET_CODES=1: the mail, code included, goes to the log.
    (Without the setting the code is never logged: tests/security/test_secrets_and_leaks.py.)"""
    account = create_account(root_client)
    with log_codes_stack.client() as client:
        response = client.post("/api/users/reset-password", json={"email": account.email})
        assert response.json() == SENT
        log = data_root / "log-codes-stack.log"
        found: list[str] = []

        def logged() -> bool:
            for line in log.read_text(errors="replace").splitlines():
                if account.email in line and "mail_body" in line:
                    entry = json.loads(line[line.index("{") :])
                    match = CODE.search(entry["mail_body"])
                    assert match is not None, entry
                    found.append(match.group(1))
            return bool(found)

        assert wait_for(logged, timeout=10, interval=0.1)
        assert validate(client, account.email, found[-1]).json() == VERIFIED
