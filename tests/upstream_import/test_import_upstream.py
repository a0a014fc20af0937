"""`stockmanager import-upstream` end to end (issue 16): upstream SQLite files of both schema
generations, imported by the CLI into a real PostgreSQL, checked through the gateway."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.support.stack import ApiClient
from tests.support.waiting import eventually
from tests.upstream_import.conftest import ImportStack
from tests.upstream_import.shops import (
    LOCAL_BARCODE,
    LOCAL_STOCK,
    LOCAL_USER,
    newer_shop,
    older_shop,
    upstream_daily,
)


@dataclass
class Imported:
    path: Path
    report: dict[str, Any]
    dry_run: dict[str, Any]
    before: dict[str, int]
    local_product_id: int
    local_user_id: int


def totals(client: ApiClient) -> dict[str, int]:
    return {
        "products": client.get("/api/products_all", params={"limit": 1}).json()["total"],
        "sales": client.get("/api/sales", params={"limit": 1}).json()["total"],
        "users": client.get("/api/users", params={"limit": 1}).json()["total"],
        "audit": client.get("/api/all", params={"limit": 1}).json()["total"],
    }


@pytest.fixture(scope="module")
def root(import_stack: ImportStack) -> Iterator[ApiClient]:
    with import_stack.stack.root() as client:
        yield client


@pytest.fixture(scope="module")
def imported(import_stack: ImportStack, root: ApiClient, tmp_path_factory: Any) -> Imported:
    user = root.post(
        "/api/users",
        json={
            "username": LOCAL_USER,
            "email": "carla@local.example",
            "password": "carla-local",
            "role": "vendedor",
        },
    )
    assert user.status_code == 201, user.text
    product = root.post(
        "/api/products",
        json={
            "barcode": LOCAL_BARCODE,
            "name": "Leche",
            "price": 90,
            "quantity": LOCAL_STOCK,
            "min_quantity": 1,
        },
    )
    assert product.status_code == 201, product.text
    # The audit total counts records the audit consumer writes after the fact: wait for the
    # two creations (the root's login before them is in the stream ahead of both) so that
    # `before` does not move while the dry run runs.
    for entity in (
        f"user/{_user_id(root, LOCAL_USER)}",
        f"product/{_product_id(root, LOCAL_BARCODE)}",
    ):
        eventually(
            lambda entity=entity: bool(root.get(f"/api/entity/{entity}").json()["changes"]),
            timeout=30,
            what=f"the audit record of {entity}",
        )
    path = older_shop(tmp_path_factory.mktemp("upstream") / "older.db")
    before = totals(root)
    dry_run = import_stack.run_json(path, "--dry-run")
    assert totals(root) == before  # --dry-run wrote nothing
    report = import_stack.run_json(path)
    return Imported(
        path, report, dry_run, before, _product_id(root, LOCAL_BARCODE), _user_id(root, LOCAL_USER)
    )


def _product_id(client: ApiClient, barcode: str) -> int:
    found = client.get("/api/products_all", params={"search": barcode}).json()["data"]
    return next(p["id"] for p in found if p["barcode"] == barcode)


def _user_id(client: ApiClient, username: str) -> int:
    found = client.get("/api/users", params={"search": username}).json()["data"]
    return next(u["id"] for u in found if u["username"] == username)


def _local_id(report: dict[str, Any], kind: str, upstream_id: int) -> int:
    for change in report["id_changes"]:
        if change["kind"] == kind and change["upstream_id"] == upstream_id:
            return int(change["local_id"])
    return upstream_id


def test_report_counts_every_row_and_names_every_problem(imported: Imported) -> None:
    counts = imported.report["counts"]
    assert counts["users"] == {"read": 5, "imported": 4, "matched": 1, "already": 0, "skipped": 0}
    # 4 products of the file + product 42, recreated for the sale line that points at it.
    assert counts["products"] == {
        "read": 4,
        "imported": 4,
        "matched": 1,
        "already": 0,
        "skipped": 0,
    }
    assert counts["sales"] == {"read": 7, "imported": 5, "matched": 0, "already": 0, "skipped": 2}
    assert counts["sale_lines"]["imported"] == 7
    assert counts["notifications"]["imported"] == 1 and counts["notifications"]["skipped"] == 1
    assert counts["audit_log"]["imported"] == 3
    problems = imported.report["problems"]
    assert set(problems) == {
        "second_root",
        "duplicate_email",
        "username_matched",
        "invalid_role",
        "invalid_status",
        "barcode_matched",
        "invalid_number",
        "negative_stock",
        "text_too_long",
        "invalid_date",
        "merged_lines",
        "deleted_product",
        "missing_seller",
        "sale_without_lines",
        "invalid_line",
        "orphan_line",
        "orphan_notification",
        "orphan_audit_user",
        "invalid_json",
        "invalid_ip",
    }
    assert problems["duplicate_email"]["rows"] == [
        {"kind": "users", "upstream_id": 3, "detail": "'ANA@shop.example' -> 'ANA+3@shop.example'"}
    ]
    # Upstream user 1 collides with the local root (id 1): a new id, reported.
    assert any(
        c["kind"] == "users" and c["upstream_id"] == 1 for c in imported.report["id_changes"]
    )
    # The dry run reported exactly what the real run then did.
    assert imported.dry_run["counts"] == counts and imported.dry_run["dry_run"] is True
    assert imported.dry_run["problems"] == problems


def test_old_passwords_log_in_and_roles_come_over(
    import_stack: ImportStack, root: ApiClient, imported: Imported
) -> None:
    for username, password in (("ana", "ana-pass"), ("beto", "beto-pass"), ("dora", "dora-pass")):
        with import_stack.stack.login(username, password) as client:
            assert client.get("/api/session").json()["username"] == username
    jefe = root.get(f"/api/users/{_local_id(imported.report, 'users', 1)}").json()
    assert (jefe["username"], jefe["role"]) == ("jefe", "admin")  # one root only: ours
    dora = root.get("/api/users/5").json()  # id kept
    assert (dora["username"], dora["role"], dora["status"]) == ("dora", "admin", 1)
    beto = root.get("/api/users/3").json()
    assert beto["email"] == "ANA+3@shop.example"
    # Merged by username: the local account is untouched (its own password still works).
    with import_stack.stack.login(LOCAL_USER, "carla-local"):
        pass


def test_stock_arrives_through_the_ledger(root: ApiClient, imported: Imported) -> None:
    expected = {1: 10, 3: 0, 4: 3, 42: 0}  # 3: negative upstream stock, clamped
    ids = {upstream: _local_id(imported.report, "products", upstream) for upstream in expected}
    assert ids[1] != 1  # the local product created first has id 1: renumbered, reported
    for upstream, quantity in expected.items():
        item_id = ids[upstream]
        product = root.get(f"/api/products/{item_id}").json()
        assert product["stock"] == quantity, product
        moves = root.get(f"/api/products/{item_id}/movements", params={"limit": 250}).json()
        assert sum(m["delta"] for m in moves["data"]) == quantity
        assert all(m["reason"] == "import" for m in moves["data"])
    yerba = root.get(f"/api/products/{ids[1]}").json()
    assert (yerba["price"], yerba["expiration_date"]) == (1234.5, "2026-12-31")
    cookies = root.get(f"/api/products/{ids[3]}").json()
    assert cookies["price"] == 0  # malformed upstream price
    gone = root.get(f"/api/products/{ids[42]}").json()
    assert (gone["name"], gone["status"], gone["price"]) == ("Producto eliminado #42", 0, 5.5)
    local = root.get(f"/api/products/{imported.local_product_id}").json()
    assert local["stock"] == LOCAL_STOCK and local["name"] == "Leche"  # merged, untouched


def test_sales_keep_times_sellers_lines_and_totals(root: ApiClient, imported: Imported) -> None:
    first = root.get("/api/sales/1").json()
    # Upstream local time, shown in the business zone as it was.
    assert first["date"] == "2025-02-01 21:30:00"
    assert (first["vendedor"], first["payment_method"], first["total"]) == (
        "ana",
        "Tarjeta",
        2479.0,
    )
    merged = root.get("/api/sales/2").json()
    assert [(p["quantity"], p["price"]) for p in merged["products"]] == [(2, 1250.0)]
    orphaned = root.get("/api/sales/3").json()
    assert (orphaned["vendor_id"], orphaned["vendedor"]) == (0, "viejo")
    assert orphaned["products"] == [{"name": "Producto eliminado #42", "quantity": 3, "price": 5.5}]
    assert root.get("/api/sales/4").status_code == 404  # malformed date: skipped
    assert root.get("/api/sales/5").status_code == 404  # no lines: skipped
    carla = root.get("/api/sales/6").json()
    assert carla["vendor_id"] == imported.local_user_id
    assert {p["name"] for p in carla["products"]} == {"Leche local", "Fideos de sémola extra la"}


def test_metrics_match_upstreams_figures(root: ApiClient, imported: Imported) -> None:
    source = upstream_daily(imported.path, "2025-02-01", "2025-02-03")
    body = root.get("/api/metrics", params={"from": "2025-02-01", "to": "2025-02-03"}).json()
    days = ["2025-02-01", "2025-02-02", "2025-02-03"]
    assert body["salesOverTime"]["revenue"] == [source["days"][d]["revenue"] for d in days]
    assert body["salesOverTime"]["sales"] == [source["days"][d]["sales"] for d in days]
    assert body["kpis"]["unitsSold"] == sum(d["units"] for d in source["days"].values())
    assert body["kpis"]["totalSales"] == sum(d["sales"] for d in source["days"].values())
    assert body["salesByHour"] == [source["hours"].get(h, 0) for h in range(24)]


def test_history_is_readable_marked_and_append_only(
    import_stack: ImportStack, root: ApiClient, imported: Imported
) -> None:
    records = root.get("/api/all", params={"limit": 200}).json()["records"]
    history = [r for r in records if r["event_type"] == "upstream.history"]
    assert len(history) == 3
    created = next(r for r in history if r["action"] == "create")
    assert created["timestamp"] == "2025-02-01T21:30:00.123456-03:00"
    # The entity id is the product's id here, so its trail shows its imported history.
    yerba_id = _local_id(imported.report, "products", 1)
    assert (created["username"], created["entity_type"], created["entity_id"]) == (
        "ana",
        "product",
        yerba_id,
    )
    trail = root.get(f"/api/entity/product/{yerba_id}").json()
    assert [c["action"] for c in trail["changes"]] == ["create", "update"]
    assert created["new_value"] == {"name": "Yerba 1kg"}
    broken = next(r for r in history if r["action"] == "update")
    assert broken["new_value"] == "{roto" and broken["ip_address"] is None
    assert next(r for r in history if r["action"] == "login")["user_id"] is None
    # The one summary event of the import, audited.
    eventually(
        lambda: any(
            r["event_type"] == "upstream.imported"
            for r in root.get("/api/all", params={"action": "import"}).json()["records"]
        ),
        timeout=30,
        what="the import's summary event in the audit log",
    )
    with (
        psycopg.connect(import_stack.database_url) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute(
            "UPDATE audit.audit_log SET description = 'x' WHERE event_type = 'upstream.history'"
        )


def test_notifications_come_over(import_stack: ImportStack, imported: Imported) -> None:
    with import_stack.stack.login("ana", "ana-pass") as client:
        titles = [n["title"] for n in client.get("/api/notifications/all").json()]
    assert titles == ["Stock bajo: Yerba"]


def test_a_second_run_imports_nothing(
    import_stack: ImportStack, root: ApiClient, imported: Imported
) -> None:
    before = totals(root)
    again = import_stack.run_json(imported.path)
    assert all(c["imported"] == 0 and c["matched"] == 0 for c in again["counts"].values())
    assert again["counts"]["sales"]["already"] == 5
    assert totals(root) == before
    with psycopg.connect(import_stack.database_url) as conn:
        summaries = conn.execute(
            "SELECT count(*) FROM users.outbox WHERE type = 'upstream.imported'"
        ).fetchone()
    assert summaries == (1,)  # no summary event for an import that brought nothing


def test_a_newer_generation_shop_merges_and_renumbers(
    import_stack: ImportStack, root: ApiClient, imported: Imported, tmp_path: Path
) -> None:
    path = newer_shop(tmp_path / "newer.db")
    done = import_stack.run(path)  # the text report
    assert done.returncode == 0, done.stderr
    assert "newer (unique e-mails" in done.stdout and "duplicate_username (1)" in done.stdout
    report = import_stack.run_json(path)  # already imported: a no-op, same problems
    assert report["counts"]["users"]["already"] == 3
    with import_stack.stack.login("EVA_2", "eva2-pass") as client:
        assert client.get("/api/session").json()["username"] == "EVA_2"
    # Sale ids 1 and 2 were taken by the first shop: new ids, reported in the first run.
    first = json.loads(import_stack.run(path, "--json", "--dry-run").stdout)
    assert first["counts"]["sales"]["already"] == 2
    sales = root.get("/api/sales", params={"limit": 100}).json()["data"]
    mate_sales = [s for s in sales if any(p["name"] == "Mate" for p in s["products"])]
    assert len(mate_sales) == 2 and all(s["id"] not in (1, 2) for s in mate_sales)
    yerba = root.get(f"/api/products/{_local_id(imported.report, 'products', 1)}").json()
    assert yerba["stock"] == 10  # matched by barcode: the first shop's product, unchanged


def test_bad_input_is_a_clear_error(import_stack: ImportStack, tmp_path: Path) -> None:
    not_sqlite = tmp_path / "notes.txt"
    not_sqlite.write_text("hola")
    done = import_stack.run(not_sqlite, "--json")
    assert done.returncode == 2
    assert json.loads(done.stdout)["code"] == "invalid_upstream_file"
    done = import_stack.run(tmp_path / "missing.db")
    assert done.returncode == 2 and "no such file" in done.stderr
