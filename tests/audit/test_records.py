"""Event → audit record: action names, entity, old/new values and upstream-style descriptions."""

from __future__ import annotations

import time

from services.audit.records import record_for
from services.audit.refused import action_for_request
from stockmanager.events import Event, EventType, new_event
from stockmanager.identity import Identity

ADMIN = Identity(
    user_id=7,
    username="ana",
    role="admin",
    request_id="req-1",
    ip="203.0.113.5",
    issued_at=time.time(),
)

PRODUCT = {
    "id": 12,
    "barcode": "779123",
    "name": "Yerba 1kg",
    "description": "",
    "price": 1234.5,
    "quantity": 10,
    "min_quantity": 5,
    "status": 1,
    "expiration_date": None,
}


def event(
    event_type: str,
    entity_type: str = "product",
    entity_id: int | None = 12,
    identity: Identity | None = ADMIN,
    **fields: object,
) -> Event:
    return new_event(
        event_type, identity=identity, entity_type=entity_type, entity_id=entity_id, **fields
    )  # type: ignore[arg-type]


def test_product_created_lists_fields_with_labels_and_money() -> None:
    record = record_for(event(EventType.PRODUCT_CREATED, after=PRODUCT, data={"product": PRODUCT}))
    assert record is not None
    assert record.action == "create"
    assert (record.entity_type, record.entity_id) == ("product", 12)
    assert (record.user_id, record.username, record.role) == (7, "ana", "admin")
    assert record.ip_address == "203.0.113.5" and record.request_id == "req-1"
    assert record.old_value is None and record.new_value == PRODUCT
    assert record.description == (
        "Nuevo Producto creado — Código de barras: '779123', Nombre: 'Yerba 1kg', "
        "Descripción: '', Precio: '$1,234.50', Cantidad: '10', Stock mínimo: '5'"
    )
    assert record.status == "success"


def test_descriptions_do_not_depend_on_key_order() -> None:
    # Payloads read back from a JSONB outbox have their keys reordered.
    shuffled = dict(sorted(PRODUCT.items(), key=lambda item: (len(item[0]), item[0])))
    one = record_for(event(EventType.PRODUCT_CREATED, after=PRODUCT))
    two = record_for(event(EventType.PRODUCT_CREATED, after=shuffled))
    assert one is not None and two is not None and one.description == two.description
    before = dict(reversed(list({**PRODUCT, "price": 1.0}.items())))
    three = record_for(
        event(EventType.PRODUCT_UPDATED, before=before, after={**shuffled, "name": "X"})
    )
    assert three is not None
    assert three.description == "Cambios: Nombre: 'Yerba 1kg' → 'X'; Precio: '1.0' → '1234.5'"


def test_product_update_describes_only_changed_fields() -> None:
    before = {**PRODUCT, "price": 10.0}
    after = {**PRODUCT, "price": 12.0, "name": "Yerba 2kg"}
    record = record_for(
        event(
            EventType.PRODUCT_UPDATED,
            before=before,
            after=after,
            data={"changed": ["price", "name"]},
        )
    )
    assert record is not None and record.action == "update"
    assert record.old_value == before and record.new_value == after
    assert record.description == (
        "Cambios: Nombre: 'Yerba 1kg' → 'Yerba 2kg'; Precio: '10.0' → '12.0'"
    )


def test_money_compares_by_value_whatever_its_json_type() -> None:
    before, after = {"price": "10.00", "quantity": 3}, {"price": 10, "quantity": 3}
    record = record_for(event(EventType.PRODUCT_UPDATED, before=before, after=after))
    assert record is not None and record.description == "Sin cambios detectados"
    partial = record_for(event(EventType.PRODUCT_UPDATED, after=after))
    assert partial is not None
    assert partial.description == "Cambios registrados (snapshot parcial)"


def test_product_disabled_is_a_delete_and_activated_an_activate() -> None:
    disabled = record_for(
        event(
            EventType.PRODUCT_DISABLED,
            data={"name": "Yerba 1kg"},
            before={"status": 1},
            after={"status": 0},
        )
    )
    assert disabled is not None and disabled.action == "delete"
    assert disabled.description == "Producto eliminado — Nombre: 'Yerba 1kg' (ID: 12)"
    assert disabled.old_value == {"status": 1} and disabled.new_value == {"status": 0}
    activated = record_for(
        event(
            EventType.PRODUCT_ACTIVATED,
            data={"name": "Yerba 1kg"},
            before={"status": 0},
            after={"status": 1},
        )
    )
    assert activated is not None and activated.action == "activate"
    assert activated.description == "Producto activado — Nombre: 'Yerba 1kg' (ID: 12)"


def test_bulk_price_update_keeps_every_product() -> None:
    products = [
        {"id": 1, "name": "A", "old_price": 10, "new_price": 12.5},
        {"id": 2, "name": "B", "old_price": "5.00", "new_price": "6.00"},
    ]
    record = record_for(
        event(EventType.PRODUCT_PRICES_BULK_UPDATED, entity_id=None, data={"products": products})
    )
    assert record is not None and record.action == "update_price_bulk"
    assert record.entity_id is None
    assert record.old_value == {
        "products": [{"id": 1, "name": "A", "price": 10}, {"id": 2, "name": "B", "price": "5.00"}]
    }
    assert record.new_value == {
        "products": [{"id": 1, "name": "A", "price": 12.5}, {"id": 2, "name": "B", "price": "6.00"}]
    }
    assert record.description == (
        "Actualización masiva de precios (2 productos) — 'A' (ID: 1): '10.0' → '12.5'; "
        "'B' (ID: 2): '5.0' → '6.0'"
    )
    stock = record_for(
        event(
            EventType.PRODUCT_STOCK_BULK_UPDATED,
            entity_id=None,
            data={"products": [{"id": 3, "name": "C", "old_stock": 4, "new_stock": 9}]},
        )
    )
    assert stock is not None and stock.action == "stock_update_bulk"
    assert stock.new_value == {"products": [{"id": 3, "name": "C", "quantity": 9}]}
    assert stock.description == (
        "Actualización masiva de stock (1 producto) — 'C' (ID: 3): '4' → '9'"
    )


def test_sale_created_and_updated() -> None:
    sale = {
        "sale_id": 40,
        "vendor_id": 7,
        "vendor_username": "ana",
        "payment_method": "Efectivo",
        "total": 1500.0,
        "items": [
            {"item_id": 1, "name": "A", "quantity": 2, "unit_price": 500.0, "subtotal": 1000.0},
            {"item_id": 2, "name": "B", "quantity": 1, "unit_price": 500.0, "subtotal": 500.0},
        ],
    }
    created = record_for(event(EventType.SALE_CREATED, "sale", 40, data=sale, after=sale))
    assert created is not None and created.action == "create"
    assert created.new_value == sale
    assert created.description == (
        "Nueva Venta creada — Vendedor: 'ana', Método de pago: 'Efectivo', "
        "Total: '$1,500.00', Productos: 'A' x2, 'B' x1"
    )
    before = {k: sale[k] for k in ("vendor_id", "payment_method", "total", "items")}
    after = {
        **before,
        "total": 2000.0,
        "payment_method": "Tarjeta",
        "items": [
            {"item_id": 1, "name": "A", "quantity": 4, "unit_price": 500.0, "subtotal": 2000.0}
        ],
    }
    updated = record_for(
        event(EventType.SALE_UPDATED, "sale", 40, data={"sale_id": 40}, before=before, after=after)
    )
    assert updated is not None and updated.action == "update"
    assert updated.old_value == before and updated.new_value == after
    assert updated.description == (
        "Cambios: Método de pago: 'Efectivo' → 'Tarjeta'; Total: '1500.0' → '2000.0'; "
        "Productos: 'A' x2, 'B' x1 → 'A' x4"
    )


def test_user_events_never_store_secrets() -> None:
    snapshot = {
        "id": 9,
        "username": "bob",
        "email": "bob@x.test",
        "role": "vendedor",
        "status": 1,
        "application": "accepted",
        "password": "s3cret!",
        "password_hash": "$argon2id$...",
    }
    created = record_for(event(EventType.USER_CREATED, "user", 9, after=snapshot))
    assert created is not None and created.action == "create"
    assert "password" not in created.new_value and "password_hash" not in created.new_value
    assert "s3cret" not in created.description
    assert created.description == (
        "Nuevo Usuario creado — Nombre de usuario: 'bob', Email: 'bob@x.test', Rol: 'vendedor'"
    )
    before = {k: v for k, v in snapshot.items() if not k.startswith("password")}
    updated = record_for(
        event(
            EventType.USER_UPDATED,
            "user",
            9,
            before=before,
            after={**before, "role": "admin"},
            data={"changed": ["role", "password"], "password_changed": True, "by_admin": True},
        )
    )
    assert updated is not None and updated.action == "update"
    assert updated.description == "Cambios: Rol: 'vendedor' → 'admin'; Contraseña: cambiada"
    disabled = record_for(
        event(EventType.USER_DISABLED, "user", 9, before=before, after={**before, "status": 0})
    )
    assert disabled is not None and disabled.action == "delete"
    assert disabled.description == "Usuario eliminado — Nombre de usuario: 'bob' (ID: 9)"


def test_anonymous_events_have_no_user() -> None:
    snapshot = {
        "id": 9,
        "username": "eve",
        "email": "eve@x.test",
        "role": "vendedor",
        "status": 0,
        "application": "pending",
    }
    registered = record_for(
        event(EventType.USER_REGISTERED, "user", 9, identity=None, after=snapshot)
    )
    assert registered is not None and registered.action == "register"
    assert (registered.user_id, registered.username, registered.role) == (None, None, None)
    assert registered.ip_address is None
    assert registered.description == (
        "Nuevo Usuario registrado — Nombre de usuario: 'eve', Email: 'eve@x.test', "
        "Rol: 'vendedor' (pendiente de aprobación)"
    )
    requested = record_for(
        event(
            EventType.USER_PASSWORD_RESET_REQUESTED,
            "user",
            None,
            identity=None,
            data={"email_known": False},
        )
    )
    assert requested is not None and requested.action == "reset_password"
    assert requested.description == (
        "Solicitud de código de recuperación de contraseña (correo registrado: no)"
    )
    reset = record_for(event(EventType.USER_PASSWORD_RESET, "user", 9, identity=None))
    assert reset is not None and reset.action == "change_password"


def test_failed_login_carries_the_attempted_name_never_the_password() -> None:
    anonymous = Identity(
        user_id=None,
        username=None,
        role=None,
        request_id="r",
        ip="192.0.2.1",
        issued_at=time.time(),
    )
    failed = record_for(
        event(
            EventType.LOGIN_FAILED,
            "user",
            None,
            identity=anonymous,
            status="error",
            data={
                "username": "mallory\n<b>",
                "reason": "invalid_credentials",
                "password": "hunter2",
            },
        )
    )
    assert failed is not None
    assert (failed.action, failed.status, failed.user_id) == ("login", "error", None)
    assert failed.ip_address == "192.0.2.1"
    assert failed.description == (
        "Inicio de sesión fallido — Nombre de usuario: 'mallory <b>' (Credenciales inválidas)"
    )
    assert failed.new_value == {"username": "mallory <b>", "reason": "invalid_credentials"}
    assert "hunter2" not in repr(failed)


def test_login_logout_and_refused_requests() -> None:
    login = record_for(event(EventType.LOGIN_SUCCEEDED, "user", 7))
    assert login is not None and login.action == "login" and login.status == "success"
    assert login.description == "Inicio de sesión — Nombre de usuario: 'ana' (ID: 7)"
    logout = record_for(event(EventType.LOGOUT, "user", 7))
    assert logout is not None and logout.action == "logout"
    refused = record_for(
        event(
            EventType.REQUEST_REFUSED,
            "product",
            12,
            status="error",
            data={
                "method": "DELETE",
                "path": "/api/products/12",
                "http_status": 403,
                "service": "products",
            },
        )
    )
    assert refused is not None
    assert (refused.action, refused.status, refused.entity_id) == ("delete", "error", 12)
    assert refused.description == (
        "Error al ejecutar delete de Producto #12: HTTP 403 (DELETE /api/products/12)"
    )


def test_refused_request_action_names() -> None:
    assert action_for_request("POST", "/api/products") == "create"
    assert action_for_request("POST", "/api/products/update_price_bulk") == "update_price_bulk"
    assert action_for_request("POST", "/api/products/stock_update_bulk/") == "stock_update_bulk"
    assert action_for_request("POST", "/api/products/3/activate") == "activate"
    assert action_for_request("POST", "/api/sales/bulk") == "create"
    assert action_for_request("PUT", "/api/sales/3") == "update"
    assert action_for_request("POST", "/api/applications/4/approve") == "approve"
    assert action_for_request("POST", "/api/applications/4/reject") == "reject"
    assert action_for_request("PUT", "/api/api/settings/password") == "change_password"
    assert action_for_request("POST", "/api/users/reset-password") == "reset_password"
    assert (
        action_for_request("POST", "/api/users/reset-password/change-password") == "change_password"
    )
    assert action_for_request("PATCH", "/api/unknown") == "patch"


def test_application_settings_notifications_debug() -> None:
    approved = record_for(
        event(
            EventType.APPLICATION_APPROVED,
            "application",
            9,
            before={"status": 0, "application": "pending"},
            after={"status": 1, "application": "accepted", "username": "eve"},
        )
    )
    assert approved is not None and approved.action == "approve"
    assert approved.entity_type == "application"
    assert approved.description == "Aplicación aprobada — Nombre de usuario: 'eve' (ID: 9)"
    rejected = record_for(event(EventType.APPLICATION_REJECTED, "application", 9))
    assert rejected is not None and rejected.action == "reject"
    assert rejected.description == "Aplicación rechazada (ID: 9)"
    settings = record_for(
        event(
            EventType.SETTINGS_UPDATED,
            "settings",
            None,
            data={"key": "low_stock_threshold"},
            before={"value": 5},
            after={"value": 8},
        )
    )
    assert settings is not None and settings.action == "update"
    assert settings.old_value == {"key": "low_stock_threshold", "value": 5}
    assert settings.description == "Cambios: Configuración 'low_stock_threshold': '5' → '8'"
    note = record_for(
        event(
            EventType.NOTIFICATION_CREATED,
            "notification",
            3,
            data={"user_id": 9, "title": "Hola", "type": "info"},
        )
    )
    assert note is not None and note.action == "create"
    assert note.description == (
        "Nueva Notificación creada — Usuario destino (ID): '9', Título: 'Hola', Tipo: 'info'"
    )
    debug = record_for(
        event(
            EventType.DEBUG_COMMAND_RUN,
            "debug",
            None,
            status="error",
            data={"command": "rm -rf /", "refused": True},
        )
    )
    assert debug is not None and debug.action == "debug_command" and debug.status == "error"
    assert debug.description == "Comando de diagnóstico rechazado: 'rm -rf /'"


def test_stock_low_is_not_audited_and_unknown_types_are() -> None:
    assert record_for(event(EventType.STOCK_LOW, data={"item_id": 12})) is None
    unknown = record_for(event("product.archived"))
    assert unknown is not None and unknown.action == "archived"
    assert unknown.description == "Archived de Producto #12"


def test_bad_ip_and_entity_id_do_not_break_the_record() -> None:
    weird = Identity(
        user_id=7, username="ana", role="admin", request_id="r", ip="unknown", issued_at=time.time()
    )
    record = record_for(event(EventType.PRODUCT_UPDATED, entity_id=None, identity=weird))
    assert record is not None and record.ip_address is None and record.entity_id is None


def test_a_payload_that_cannot_be_described_is_still_recorded() -> None:
    odd = record_for(
        event(EventType.PRODUCT_UPDATED, before=["not", "a", "dict"], after={"price": 1})
    )  # type: ignore[arg-type]
    assert odd is not None
    assert (odd.action, odd.entity_id) == ("update", 12)
    assert odd.description == "Actualización de Producto #12"
    assert odd.old_value == ["not", "a", "dict"]
    strange = record_for(event("Weird.Ünïcode Type!", entity_type="Odd Thing", entity_id=2**70))
    assert strange is not None
    assert (strange.action, strange.entity_type, strange.entity_id) == (
        "n_code_type",
        "odd_thing",
        None,
    )


def test_fallback_actions_match_the_builders() -> None:
    from services.audit.builders import BUILDERS, FALLBACK_ACTIONS

    assert set(FALLBACK_ACTIONS) == set(BUILDERS) - {EventType.REQUEST_REFUSED}
    for event_type, action in FALLBACK_ACTIONS.items():
        record = record_for(event(event_type, data={}))
        assert record is not None and record.action == action, event_type


def test_clean_walks_only_values_that_need_it() -> None:
    from services.audit.coerce import clean

    plain = {"id": 1, "items": [{"name": "Yerba", "quantity": 2}], "note": None}
    assert clean(plain) is plain  # nothing to remove or replace: not copied
    nested = {"user": {"id": 3, "password_hash": "$argon2id$", "roles": [{"token": "t"}]}}
    assert clean(nested) == {"user": {"id": 3, "roles": [{}]}}
    assert clean({"path": "/a\x00b", "x\x00": 1}) == {"path": "/a\ufffdb", "x\ufffd": 1}
    assert clean({"name": "broken \ud800 text"}) == {"name": "broken \ufffd text"}
    assert clean({"comment": "password"}) == {"comment": "password"}  # a value, kept
    assert clean(None) is None
