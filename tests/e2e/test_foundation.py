"""Foundation acceptance through the gateway, with every process real (issue: foundation)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from stockmanager.embedded import free_port
from stockmanager.identity import IDENTITY_HEADER, Identity, sign_identity
from tests.support.stack import Stack, extra_gateway, unique


def assert_json_error(response: httpx.Response, status: int, message: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body.get("error"), str) and isinstance(body.get("code"), str)
    if message is not None:
        assert body["error"] == message
    return body


def test_health_is_public_and_upstream_shaped(stack: Stack) -> None:
    with stack.client() as client:
        response = client.get("/api/health")
    assert response.status_code == 200
    assert response.json() == {"status": "Ok"}


def test_login_session_logout_cycle(stack: Stack) -> None:
    with stack.client() as client:
        response = client.post(
            "/api/login", json={"username": "root", "password": stack.root_password}
        )
        assert response.status_code == 200
        body = response.json()
        assert body == {
            "success": True,
            "user_id": body["user_id"],
            "username": "root",
            "role": "root",
        }
        assert isinstance(body["user_id"], int)
        cookie = response.headers["set-cookie"]
        assert cookie.startswith("session=")
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
        token = response.cookies["session"]
        assert len(token) >= 32

        session = client.get("/api/session")
        assert session.status_code == 200
        assert session.json() == {"user_id": body["user_id"], "username": "root", "role": "root"}

        assert client.post("/api/logout").json() == {"message": "Sesión cerrada"}

    # The same cookie no longer works: the session was removed server-side.
    with stack.client(cookies={"session": token}) as replay:
        assert_json_error(replay.get("/api/session"), 401, "No autenticado")


def test_login_by_email_returns_stored_username(stack: Stack) -> None:
    with stack.client() as client:
        response = client.post(
            "/api/login", json={"username": "ROOT@localhost", "password": stack.root_password}
        )
    assert response.status_code == 200
    assert response.json()["username"] == "root"


def test_each_login_issues_a_new_token(stack: Stack) -> None:
    with stack.root() as client:
        first = client.cookies["session"]
        client.post("/api/login", json={"username": "root", "password": stack.root_password})
        second = client.cookies["session"]
    assert first != second
    with stack.client(cookies={"session": first}) as old:
        assert old.get("/api/session").status_code == 401


def test_wrong_password_then_rate_limited(stack: Stack) -> None:
    username = unique("nobody")
    with stack.client() as client:
        for _ in range(5):
            assert_json_error(
                client.post("/api/login", json={"username": username, "password": "wrong"}),
                401,
                "Credenciales inválidas",
            )
        sixth = client.post("/api/login", json={"username": username, "password": "wrong"})
    body = assert_json_error(sixth, 429)
    assert body["code"] == "rate_limited"
    assert int(sixth.headers["retry-after"]) > 0


def test_wrong_root_password_is_401(stack: Stack) -> None:
    with stack.client() as client:
        response = client.post("/api/login", json={"username": "root", "password": "not-it"})
    assert_json_error(response, 401, "Credenciales inválidas")


def test_login_validation(stack: Stack) -> None:
    with stack.client() as client:
        assert_json_error(
            client.post("/api/login", json={"username": "root"}),
            400,
            "Usuario y contraseña requeridos",
        )
        assert_json_error(
            client.post(
                "/api/login", content=b"username=root", headers={"content-type": "application/json"}
            ),
            400,
        )
        assert_json_error(
            client.post(
                "/api/login", content=b"[1,2]", headers={"content-type": "application/json"}
            ),
            400,
        )


def test_foreign_origin_is_refused_on_state_change(stack: Stack) -> None:
    with stack.client() as client:
        response = client.post(
            "/api/login",
            json={"username": "root", "password": stack.root_password},
            headers={"Origin": "https://evil.example"},
        )
        assert_json_error(response, 403)
        # Same-origin requests and clients that send no Origin pass.
        ok = client.post(
            "/api/login",
            json={"username": "root", "password": stack.root_password},
            headers={"Origin": stack.base_url},
        )
        assert ok.status_code == 200


def test_unknown_path_wrong_method_and_big_body_are_json(stack: Stack) -> None:
    with stack.client() as client:
        assert_json_error(client.get("/api/does-not-exist"), 404, "Ruta no encontrada")
        response = client.delete("/api/health")
        assert_json_error(response, 405)
        assert "GET" in response.headers["allow"]
        big = b"{" + b" " * (2 * 1024 * 1024) + b"}"
        assert_json_error(
            client.post("/api/login", content=big, headers={"content-type": "application/json"}),
            413,
        )


def test_protected_route_without_cookie_is_401(stack: Stack) -> None:
    with stack.client() as client:
        assert_json_error(client.get("/api/products"), 401, "No autenticado")
        assert_json_error(client.get("/api/users"), 401, "No autenticado")


def test_request_id_is_generated_and_echoed(stack: Stack) -> None:
    with stack.client() as client:
        generated = client.get("/api/health").headers["x-request-id"]
        assert len(generated) >= 16
        echoed = client.get("/api/health", headers={"X-Request-ID": "trace-123"})
    assert echoed.headers["x-request-id"] == "trace-123"


def _users_url(stack: Stack) -> str:
    return stack.service_urls["users"][0]


def test_service_rejects_requests_without_gateway_identity(stack: Stack) -> None:
    url = _users_url(stack) + "/internal/auth/verify"
    body = {"username": "root", "password": stack.root_password}
    secret = stack.env["STOCKMANAGER_INTERNAL_SECRET"]

    def identity(issued_at: float) -> Identity:
        return Identity(
            user_id=1,
            username="root",
            role="root",
            request_id="x",
            ip="1.2.3.4",
            issued_at=issued_at,
        )

    with httpx.Client(timeout=10) as client:
        assert_json_error(client.post(url, json=body), 401, "No autenticado")
        forged = sign_identity(identity(time.time()), "not-the-secret")
        assert_json_error(client.post(url, json=body, headers={IDENTITY_HEADER: forged}), 401)
        expired = sign_identity(identity(time.time() - 120), secret)
        assert_json_error(client.post(url, json=body, headers={IDENTITY_HEADER: expired}), 401)
        tampered = sign_identity(identity(time.time()), secret)
        payload, signature = tampered.rsplit(".", 1)
        assert_json_error(
            client.post(
                url, json=body, headers={IDENTITY_HEADER: payload[:-2] + "xx." + signature}
            ),
            401,
        )
        valid = sign_identity(identity(time.time()), secret)
        assert client.post(url, json=body, headers={IDENTITY_HEADER: valid}).status_code == 200


def test_client_identity_headers_are_stripped(stack: Stack) -> None:
    # A client cannot smuggle an identity: the gateway replaces the header with its own.
    secret = stack.env["STOCKMANAGER_INTERNAL_SECRET"]
    fake = sign_identity(
        Identity(
            user_id=1,
            username="root",
            role="root",
            request_id="x",
            ip="1.1.1.1",
            issued_at=time.time(),
        ),
        secret,
    )
    with stack.client() as client:
        response = client.get("/api/users", headers={IDENTITY_HEADER: fake})
    assert_json_error(response, 401, "No autenticado")


@pytest.fixture(scope="module")
def lonely_gateway(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A gateway whose services are all unreachable (nothing listens on their ports)."""
    env = dict(stack.env)
    for name in ("products", "sales", "users", "metrics", "notifications", "audit"):
        env[f"STOCKMANAGER_{name.upper()}_URLS"] = f"http://127.0.0.1:{free_port()}"
    with extra_gateway(env, Path(tmp_path_factory.mktemp("lonely")) / "gateway.log") as url:
        yield url


def test_service_down_is_503_json(stack: Stack, lonely_gateway: str) -> None:
    # Log in through the real stack; the session lives in the shared Redis.
    with stack.root() as logged_in:
        cookie = logged_in.cookies["session"]
    with httpx.Client(base_url=lonely_gateway, cookies={"session": cookie}, timeout=10) as client:
        refused = client.get("/api/products")
        body = assert_json_error(refused, 503, "Servicio no disponible")
        assert body["code"] == "service_unavailable"
        assert refused.headers["retry-after"] == "1"  # clients know when to try again
        # Login needs the users service: also a clean 503, not a crash.
        down = client.post("/api/login", json={"username": "root", "password": "x"})
        assert_json_error(down, 503)
        assert down.headers["retry-after"] == "1"
        deep = client.get("/api/health", params={"deep": "1"})
        assert deep.status_code == 503
        assert "products" in deep.json()["down"]
        assert client.get("/api/health").json() == {"status": "Ok"}
