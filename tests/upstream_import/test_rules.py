"""The kernel's pure rules of import-upstream: cell parsing and the per-row rules (no database)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from stockmanager.upstream.read import read_upstream
from stockmanager.upstream.report import RULES, Report
from stockmanager.upstream.rules_users import email_with_suffix
from stockmanager.upstream.source import GENERATION_NEWER, GENERATION_OLDER, UpstreamFile
from stockmanager.upstream.values import as_money, calendar_date, exact_money, local_time
from tests.support.upstream_sqlite import UpstreamDb

TZ = ZoneInfo("America/Argentina/Buenos_Aires")
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_prices_round_half_away_from_zero_like_postgresql() -> None:
    assert as_money(1234.5) == Decimal("1234.50")
    assert as_money("2.345") == Decimal("2.35")
    assert exact_money(0.1 + 0.2) == Decimal("0.30")
    assert as_money("abc") is None and as_money(None) is None and as_money(float("nan")) is None
    assert as_money(1e13) is None  # beyond NUMERIC(12,2)


def test_local_times_become_utc_in_the_business_zone() -> None:
    assert local_time("2025-02-01 21:30:00", TZ) == datetime(2025, 2, 2, 0, 30, tzinfo=UTC)
    assert local_time("2025-02-01T21:30:00.123456", TZ) == datetime(
        2025, 2, 2, 0, 30, 0, 123456, tzinfo=UTC
    )
    assert local_time("no es fecha", TZ) is None and local_time(None, TZ) is None
    assert calendar_date("31/12/2026") == date(2026, 12, 31)
    assert calendar_date("2026-12-31 00:00:00") == date(2026, 12, 31)
    assert calendar_date("mañana") is None


def test_an_email_suffix_keeps_the_length_limit() -> None:
    long_email = "x" * 90 + "@shop.example"
    renamed = email_with_suffix(long_email, "12345")
    assert len(renamed) <= 100 and renamed.endswith("+12345@shop.example")


def test_generations_are_detected_and_duplicates_renamed(tmp_path: Path) -> None:
    older = UpstreamDb(tmp_path / "older.db", "older")
    older.user(1, "ana", "a@x.example")
    older.user(2, "beto", "A@X.example")
    newer = UpstreamDb(tmp_path / "newer.db", "newer")
    newer.user(1, "ana", "a@x.example")
    newer.user(2, "ANA", "b@x.example")
    newer.user(3, "x" * 40, "c@x.example")
    for db, generation in ((older, GENERATION_OLDER), (newer, GENERATION_NEWER)):
        file = UpstreamFile(db.close())
        assert file.generation == generation
        report = Report(path=str(db.path))
        users = read_upstream(file, report, TZ, NOW).users
        file.close()
        assert len(users) == len({u.username.lower() for u in users})
        assert len(users) == len({u.email.lower() for u in users})
        assert all(problem.rule in RULES for problem in report.problems)
    assert [u.username for u in users] == ["ana", "ANA_2", "x" * 30]


def test_the_source_is_the_shop_not_the_copy(tmp_path: Path) -> None:
    first = UpstreamDb(tmp_path / "monday.db")
    first.user(1, "ana", "a@x.example", created_at="2024-01-01 00:00:00")
    later = UpstreamDb(tmp_path / "friday.db")
    later.user(1, "ana", "a@x.example", created_at="2024-01-01 00:00:00")
    later.item(1, "Yerba", 10.0)
    other = UpstreamDb(tmp_path / "other.db")
    other.user(1, "ana", "a@x.example", created_at="2024-05-05 00:00:00")
    files = [UpstreamFile(db.close()) for db in (first, later, other)]
    sources = [f.source_id() for f in files]
    fingerprints = {f.fingerprint() for f in files}
    for file in files:
        file.close()
    assert sources[0] == sources[1] != sources[2]
    assert len(fingerprints) == 3
