"""The users contract through the gateway: malformed input of every class answered 400 (never
500), over-long public input refused by the request models, and real responses matching the
response models the OpenAPI document publishes, field for field."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from pydantic import TypeAdapter

from services.users import business_settings, schemas
from services.users.api import router as accounts_router
from services.users.api_reset import router as reset_router
from services.users.api_settings import router as settings_router
from stockmanager.contracts.validation import ContractRoute
from tests.support.stack import ApiClient, Stack, unique
from tests.users.conftest import (
    PASSWORD,
    Account,
    MailStack,
    assert_error,
    create_account,
    wait_for,
)
from tests.users.test_password_reset import codes_for

AdminPair = tuple[Account, ApiClient]
ROUTES = [
    route
    for router in (reset_router, accounts_router, settings_router)
    for route in router.routes
    if isinstance(route, APIRoute)
]
UNSTORABLE = "El texto contiene caracteres no permitidos"
JSON = {"content-type": "application/json"}


def response_model(method: str, path: str) -> Any:
    """The `response_model` the users service declares for this operation."""
    for route in ROUTES:
        if route.path == path and method in route.methods:
            return route.response_model
    raise AssertionError(f"no route {method} {path}")


def conforms(response: httpx.Response, method: str, path: str) -> Any:
    """The body validated against the route's model: strictly (no coercion), and with nothing
    the model does not declare (dumping the validated value gives the body back)."""
    assert response.status_code < 300, response.text
    assert response.headers["content-type"].startswith("application/json")
    adapter = TypeAdapter(response_model(method, path))
    value = adapter.validate_json(response.content, strict=True)
    assert adapter.dump_python(value, mode="json") == response.json()
    return value


# ------------------------------------------------------------------------ the documentation


def test_every_route_is_documented() -> None:
    for route in ROUTES:
        assert route.response_model is not None, route.path
        assert route.summary, route.path
        assert 400 in route.responses, route.path  # unstorable parameters, at least
        assert isinstance(route, ContractRoute), route.path


def test_settings_models_follow_the_whitelist() -> None:
    sections = schemas.AllSettings.model_fields
    documented = {
        f"{namespace}.{name}"
        for namespace, field in sections.items()
        for name in field.annotation.model_fields  # type: ignore[union-attr]
    }
    assert documented == set(business_settings.SPECS_BY_KEY)
    description = business_settings.value_documentation()
    for spec in business_settings.SPECS:
        assert f"`{spec.key}`" in description


# ------------------------------------------------------------- real responses match the models


def test_user_responses_match_their_models(
    stack: Stack, admin: AdminPair, root_client: ApiClient
) -> None:
    _, client = admin
    username = unique("ct")
    created = client.post(
        "/api/users",
        json={
            "username": username,
            "email": f"{username}@example.com",
            "password": PASSWORD,
            "role": "vendedor",
        },
    )
    assert created.status_code == 201
    uid = conforms(created, "POST", "/api/users").id
    conforms(client.get("/api/users", params={"search": username}), "GET", "/api/users")
    conforms(client.get(f"/api/users/{uid}"), "GET", "/api/users/{user_id}")
    conforms(client.put(f"/api/users/{uid}", json={}), "PUT", "/api/users/{user_id}")
    conforms(
        client.put(f"/api/users/{uid}", json={"status": "1", "role": "Admin"}),
        "PUT",
        "/api/users/{user_id}",
    )
    suggestions = client.get("/api/suggest/vendors", params={"q": username})
    assert conforms(suggestions, "GET", "/api/suggest/vendors").data[0].id == uid
    conforms(client.delete(f"/api/users/{uid}"), "DELETE", "/api/users/{user_id}")

    pending = unique("cp")
    with stack.client() as anonymous:
        registered = anonymous.post(
            "/api/register",
            json={"username": pending, "email": f"{pending}@example.com", "password": PASSWORD},
        )
    conforms(registered, "POST", "/api/register")
    page = conforms(
        client.get("/api/applications", params={"limit": 100}), "GET", "/api/applications"
    )
    applicant = next(row.id for row in page.data if row.username == pending)
    conforms(
        client.post(f"/api/applications/{applicant}/reject"),
        "POST",
        "/api/applications/{user_id}/reject",
    )


def test_settings_responses_match_their_models(
    stack: Stack, root_client: ApiClient, make_account: Callable[..., Account]
) -> None:
    conforms(root_client.get("/api/settings/actual"), "GET", "/api/settings/actual")
    for key in ("business.name", "inventory", "inventory.low_stock_alerts", "business.timezone"):
        conforms(
            root_client.get(f"/api/api/settings/actual/{key}"),
            "GET",
            "/api/settings/actual/{key}",
        )
    for key, value in (("inventory.default_min_stock", "6"), ("inventory.low_stock_alerts", True)):
        conforms(
            root_client.put(f"/api/settings/actual/{key}", json={"value": value}),
            "PUT",
            "/api/settings/actual/{key}",
        )

    account = make_account()
    with stack.login(account.username, account.password) as own:
        new_email = f"{unique('pe')}@example.com"
        conforms(
            own.put("/api/settings/profile", json={"email": new_email}),
            "PUT",
            "/api/settings/profile",
        )
        body = {
            "current_password": PASSWORD,
            "new_password": "another-pass-2",
            "confirm_password": "another-pass-2",
        }
        conforms(own.put("/api/api/settings/password", json=body), "PUT", "/api/settings/password")


# ----------------------------------------------------------------- malformed input is 400


def nul_bodies() -> list[tuple[str, str, dict[str, Any]]]:
    name = unique("nul")
    return [
        ("POST", "/api/register", {"username": "a\x00b", "email": "a@b.co", "password": PASSWORD}),
        ("POST", "/api/register", {"username": name, "email": "a\x00@b.co", "password": PASSWORD}),
        (
            "POST",
            "/api/register",
            {"username": name, "email": "a@b.co", "password": "pass\x00word"},
        ),
        ("POST", "/api/users/reset-password", {"email": "a\x00@example.com"}),
        ("POST", "/api/users/validate-code", {"email": "a@example.com", "code": "12\x003456"}),
        (
            "POST",
            "/api/users/reset-password/change-password",
            {"email": "a@example.com", "code": "123456", "new_password": "x\x00yyyyyy"},
        ),
        ("POST", "/api/login", {"username": "root\x00", "password": PASSWORD}),
        ("POST", "/api/login", {"username": "root", "password": "a\x00"}),
    ]


def test_nul_in_public_bodies_is_400(stack: Stack) -> None:
    with stack.client() as anonymous:
        for method, path, body in nul_bodies():
            response = anonymous.request(method, path, json=body)
            assert_error(response, 400, UNSTORABLE)


def test_nul_in_admin_bodies_and_parameters_is_400(
    admin: AdminPair, root_client: ApiClient, make_account: Callable[..., Account]
) -> None:
    _, client = admin
    target = make_account()
    name = unique("nul")
    bodies: list[tuple[str, str, dict[str, Any]]] = [
        (
            "POST",
            "/api/users",
            {"username": name, "email": "a@b.co", "password": "p\x00ssword", "role": "admin"},
        ),
        ("PUT", f"/api/users/{target.id}", {"username": "x\x00"}),
        ("PUT", f"/api/users/{target.id}", {"email": "x\x00@example.com"}),
        ("PUT", f"/api/users/{target.id}", {"password": "\x00\x00\x00\x00\x00\x00"}),
        ("PUT", f"/api/users/{target.id}", {"role": "admin\x00"}),
        ("PUT", "/api/settings/profile", {"email": "x\x00@example.com"}),
    ]
    for method, path, body in bodies:
        assert_error(client.request(method, path, json=body), 400, UNSTORABLE)
    assert_error(
        root_client.put("/api/settings/actual/business.name", json={"value": "a\x00"}),
        400,
        UNSTORABLE,
    )
    for path, params in (
        ("/api/users", {"search": "\x00"}),
        ("/api/users", {"status": "1\x00"}),
        ("/api/users", {"page": "\x00", "limit": "5"}),
        ("/api/applications", {"limit": "\x00"}),
        ("/api/suggest/vendors", {"q": "ana\x00"}),
        (f"/api/users/{target.id}", {"x": "\x00"}),
    ):
        assert_error(client.get(path, params=params), 400)
    assert_error(client.get("/api/settings/actual/business%00name"), 400)
    assert_error(client.get("/api/api/settings/actual/%00"), 400)
    assert_error(root_client.put("/api/settings/actual/%00", json={"value": "x"}), 400)
    assert client.get(f"/api/users/{target.id}").json()["username"] == target.username


@pytest.mark.parametrize(
    ("content", "content_type", "message"),
    [
        (b"", "application/json", "Se requiere un cuerpo JSON"),
        (b"   ", "application/json", "Se requiere un cuerpo JSON"),
        (b"[]", "application/json", "El cuerpo de la petición debe ser un objeto JSON"),
        (b'"x"', "application/json", "El cuerpo de la petición debe ser un objeto JSON"),
        (b"null", "text/plain", "El cuerpo de la petición debe ser un objeto JSON"),
        (b"{", "application/json", "El cuerpo de la petición debe ser un objeto JSON válido"),
        (b"\xff\xfe{}", "application/json", None),
        (b'{"email": "\xc3"}', "application/json", None),
        (b'{"email": "\\ud800@example.com"}', "application/json", None),
        (b'{"username": 99999999999999999999999999999}', "application/json", None),
    ],
)
def test_unreadable_bodies_are_400_on_every_body_route(
    stack: Stack,
    admin: AdminPair,
    root_client: ApiClient,
    content: bytes,
    content_type: str | None,
    message: str | None,
) -> None:
    _, client = admin
    headers = {"content-type": content_type} if content_type else {}
    with stack.client() as anonymous:
        for path in (
            "/api/register",
            "/api/users/reset-password",
            "/api/users/validate-code",
            "/api/users/reset-password/change-password",
        ):
            assert_error(anonymous.post(path, content=content, headers=headers), 400, message)
    for method, path in (
        ("POST", "/api/users"),
        ("PUT", f"/api/users/{admin[0].id}"),
        ("PUT", "/api/settings/profile"),
        ("PUT", "/api/settings/password"),
    ):
        assert_error(client.request(method, path, content=content, headers=headers), 400, message)
    assert_error(
        root_client.put("/api/settings/actual/business.name", content=content, headers=headers),
        400,
        message,
    )


def test_wrong_json_types_are_400(
    stack: Stack, admin: AdminPair, make_account: Callable[..., Account]
) -> None:
    _, client = admin
    target = make_account()
    name = unique("wt")
    good = {"username": name, "email": f"{name}@example.com", "password": PASSWORD}
    cases: list[tuple[str, str, dict[str, Any], str]] = [
        ("POST", "/api/users", {**good, "role": ["admin"]}, "Rol no válido"),
        ("POST", "/api/users", {**good, "role": "admin", "username": 5}, "Usuario: Debe ser texto"),
        (
            "POST",
            "/api/users",
            {**good, "role": "admin", "email": {"a": 1}},
            "Email: Debe ser texto",
        ),
        (
            "POST",
            "/api/users",
            {**good, "role": "admin", "password": 12345678},
            "Contraseña: Debe ser texto",
        ),
        ("PUT", f"/api/users/{target.id}", {"username": ["x"]}, "Usuario: Debe ser texto"),
        ("PUT", f"/api/users/{target.id}", {"email": 7}, "Email: Debe ser texto"),
        ("PUT", f"/api/users/{target.id}", {"status": 2**63}, "Estado: Debe ser 0 o 1"),
        ("PUT", f"/api/users/{target.id}", {"status": [1]}, "Estado: Debe ser 0 o 1"),
        ("PUT", f"/api/users/{target.id}", {"status": 0.5}, "Estado: Debe ser 0 o 1"),
        ("PUT", f"/api/users/{target.id}", {"password": True}, "Contraseña: Debe ser texto"),
        ("PUT", "/api/settings/profile", {"email": ["a@example.com"]}, "Email es requerido"),
        (
            "PUT",
            "/api/settings/password",
            {"current_password": 1, "new_password": "abcdefg", "confirm_password": "abcdefg"},
            "Todos los campos son requeridos",
        ),
    ]
    for method, path, body, message in cases:
        assert_error(client.request(method, path, json=body), 400, message)
    with stack.client() as anonymous:
        for path, body in (
            ("/api/register", {**good, "username": 5}),
            ("/api/users/reset-password", {"email": ["a@example.com"]}),
            ("/api/users/validate-code", {"email": "a@example.com", "code": {"c": 1}}),
            ("/api/users/validate-code", {"email": "a@example.com", "code": True}),
        ):
            assert_error(anonymous.post(path, json=body), 400, "Faltan campos requeridos")
        assert_error(
            anonymous.post("/api/login", json={"username": ["root"], "password": PASSWORD}),
            400,
            "Usuario y contraseña requeridos",
        )
    # A status that is a number in any spelling the kernel's integer rule takes.
    for status in ("1", 1.0, " 1 ", True):
        response = client.put(f"/api/users/{target.id}", json={"status": status})
        assert response.status_code == 200, (status, response.text)
    assert client.get(f"/api/users/{target.id}").json()["status"] == 1


def test_huge_path_integers_are_not_500(admin: AdminPair) -> None:
    _, client = admin
    for path in ("/api/users/999999999999999999", "/api/applications/999999999999999999/approve"):
        method = "POST" if path.endswith("approve") else "GET"
        assert client.request(method, path).status_code == 404
    for path in ("/api/users/" + "9" * 30, "/api/applications/" + "9" * 30 + "/reject"):
        method = "POST" if path.endswith("reject") else "GET"
        response = client.request(method, path)
        assert response.status_code in (400, 404), response.text
        assert response.headers["content-type"].startswith("application/json")


def test_setting_values_under_the_kernel_integer_rule(root_client: ApiClient) -> None:
    key = "inventory.default_min_stock"
    for value, stored in ((" 8 ", 8), (9.0, 9), ("+10", 10)):
        response = root_client.put(f"/api/settings/actual/{key}", json={"value": value})
        assert response.json()["data"] == {key: stored}, response.text
    for value in (2**63, "1e3", [], {"v": 1}, 1001):
        assert_error(
            root_client.put(f"/api/settings/actual/{key}", json={"value": value}),
            400,
            f"Configuración '{key}': debe ser un número entero entre 0 y 1000",
            success=False,
        )


# ------------------------------------------------- over-long public input never reaches work


def test_over_long_registration_is_refused_by_the_model(stack: Stack, admin: AdminPair) -> None:
    name = unique("ol")
    huge = "x" * 100_000
    cases = [
        (
            {"username": name + huge, "email": f"{name}@example.com", "password": PASSWORD},
            f"Usuario: Máximo 30 caracteres (tiene {len(name) + len(huge)})",
        ),
        (
            {"username": name, "email": f"{name}{huge}@example.com", "password": PASSWORD},
            f"Email: Máximo 100 caracteres (tiene {len(name) + len(huge) + 12})",
        ),
        (
            {"username": name, "email": f"{name}@example.com", "password": huge},
            f"Contraseña: Máximo 128 caracteres (tiene {len(huge)})",
        ),
    ]
    with stack.client() as anonymous:
        for body, message in cases:
            assert_error(anonymous.post("/api/register", json=body), 400, message)
    assert admin[1].get("/api/users", params={"search": name}).json()["total"] == 0


def test_over_long_reset_input_is_refused_by_the_model(stack: Stack) -> None:
    huge = "9" * 100_000
    with stack.client() as anonymous:
        assert_error(
            anonymous.post("/api/users/reset-password", json={"email": f"a{huge}@example.com"}),
            400,
            "Formato de correo inválido",
        )
        for path in ("/api/users/validate-code", "/api/users/reset-password/change-password"):
            body = {"email": "a@example.com", "code": huge, "new_password": "new-password"}
            assert_error(
                anonymous.post(path, json=body),
                400,
                f"Código: Máximo 64 caracteres (tiene {len(huge)})",
            )
            body = {"email": f"{huge}@example.com", "code": "123456", "new_password": "nnnnnnn"}
            assert_error(anonymous.post(path, json=body), 400, "Formato de correo inválido")
        assert_error(
            anonymous.post(
                "/api/users/reset-password/change-password",
                json={"email": "a@example.com", "code": "123456", "new_password": huge},
            ),
            400,
            "La contraseña debe tener como máximo 128 caracteres",
        )


def test_refused_reset_input_does_not_count_as_a_wrong_code(
    mail_stack: MailStack, root_client: ApiClient
) -> None:
    """Past the attempt limit (5) a code is burned; over-long input never got that far."""
    account = create_account(root_client)
    with mail_stack.client() as client:
        response = client.post("/api/users/reset-password", json={"email": account.email})
        assert response.status_code == 200
        assert wait_for(lambda: len(codes_for(mail_stack, account.email)) == 1, timeout=10)
        code = codes_for(mail_stack, account.email)[-1]
        for _ in range(6):
            body = {"email": account.email, "code": code + "0" * 64}
            assert_error(client.post("/api/users/validate-code", json=body), 400)
            body = {"email": account.email, "code": code, "new_password": "n" * 129}
            assert_error(
                client.post("/api/users/reset-password/change-password", json=body),
                400,
                "La contraseña debe tener como máximo 128 caracteres",
            )
        verified = client.post(
            "/api/users/validate-code", json={"email": account.email, "code": f" {code} "}
        )
        assert verified.status_code == 200, verified.text
        done = client.post(
            "/api/users/reset-password/change-password",
            json={"email": account.email, "code": code, "new_password": "after-reset-9"},
        )
        assert done.status_code == 200, done.text


def test_invalid_utf8_in_parameters_is_not_500(admin: AdminPair) -> None:
    """Percent-encoded bytes that are not UTF-8 (or encode a lone surrogate) in a query or path
    are never a 500: they are read with replacement characters, or refused with a 400."""
    _, client = admin
    for raw in ("%ff", "%ED%A0%80", "%C3", "a%00%ff"):
        for url in (
            f"/api/users?search={raw}",
            f"/api/users?status={raw}&page={raw}&limit={raw}",
            f"/api/suggest/vendors?q={raw}",
            f"/api/applications?page={raw}",
            f"/api/settings/actual/{raw}",
        ):
            response = client.get(url)
            assert response.status_code in (200, 400, 404), (url, response.text)
            assert response.headers["content-type"].startswith("application/json"), url
