"""Seed a realistic shop for benchmarks: products, sellers and two years of sales.

    python -m bench.seed_shop --database-url postgresql://... [--products 10000 --sales 300000
        --lines 1000000 --days 730 --sellers 8 --seed 42]

A bench tool, not a service: it writes straight into the products, sales and users tables with
COPY (every constraint still applies), in one transaction. Defaults: 10,000 products (some out of
stock, some low, some expiring or expired, some disabled, ~2 % never sold), 300,000 sales with
exactly 1,000,000 lines over the last 730 days up to now, more sales on weekends and in the
afternoon, a slow growth trend, popular products sold far more than the long tail. Runs in well
under two minutes on a laptop-class machine. Can be run again: every run adds a new shop's worth
of uniquely named products and sales, and reuses the sellers.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import random
import sys
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import psycopg

DEFAULT_TZ = "America/Argentina/Buenos_Aires"
PAYMENT_METHODS = (("Efectivo", 55), ("Tarjeta", 35), ("Transferencia", 10))
# Relative sales per weekday (Monday first) and per opening hour 8..21 (local time).
WEEKDAY_WEIGHT = (0.85, 0.8, 0.85, 0.95, 1.2, 1.6, 1.4)
HOUR_WEIGHT = {
    8: 2,
    9: 4,
    10: 6,
    11: 7,
    12: 6,
    13: 5,
    14: 5,
    15: 6,
    16: 8,
    17: 10,
    18: 11,
    19: 10,
    20: 7,
    21: 4,
}
LINE_QUANTITY = ((1, 60), (2, 25), (3, 8), (4, 4), (5, 3))
WORDS = (
    "Leche",
    "Pan",
    "Yerba",
    "Arroz",
    "Fideos",
    "Aceite",
    "Azúcar",
    "Café",
    "Galletas",
    "Queso",
    "Jamón",
    "Agua",
    "Gaseosa",
    "Jugo",
    "Harina",
    "Sal",
    "Té",
    "Manteca",
    "Dulce",
    "Atún",
    "Jabón",
    "Shampoo",
    "Papel",
    "Detergente",
    "Vino",
    "Cerveza",
    "Chocolate",
)


@dataclass(frozen=True, slots=True)
class Config:
    database_url: str
    products: int = 10_000
    sales: int = 300_000
    lines: int = 1_000_000
    days: int = 730
    sellers: int = 8
    seed: int = 42
    timezone: str = DEFAULT_TZ


@dataclass(frozen=True, slots=True)
class SeedResult:
    first_product_id: int
    first_sale_id: int
    products: int
    sales: int
    lines: int
    seller_ids: list[int]
    seconds: float


def _weighted(rng: random.Random, choices: tuple[tuple[object, int], ...]) -> object:
    return rng.choices([c for c, _ in choices], weights=[w for _, w in choices])[0]


def _reserve_ids(cur: psycopg.Cursor[tuple[int]], table: str, count: int) -> int:
    """Reserve `count` consecutive ids of `table`'s identity sequence; returns the first."""
    cur.execute(
        "SELECT setval(pg_get_serial_sequence(%s, 'id'),"
        " nextval(pg_get_serial_sequence(%s, 'id')) + %s - 1)",
        (table, table, count),
    )
    row = cur.fetchone()
    assert row is not None
    return int(row[0]) - count + 1


def _sellers(cur: psycopg.Cursor[tuple[int]], count: int) -> list[tuple[int, str]]:
    from services.users.passwords import hash_password

    password_hash = hash_password("bench-seller-password")
    sellers = []
    for index in range(1, count + 1):
        username = f"vendedor{index:02d}" if index > 1 else "admin01"
        role = "admin" if index == 1 else "vendedor"
        cur.execute(
            "INSERT INTO users.users (username, email, password_hash, role, status, application)"
            " VALUES (%s, %s, %s, %s, 1, 'accepted') ON CONFLICT DO NOTHING",
            (username, f"{username}@bench.local", password_hash, role),
        )
        cur.execute("SELECT id FROM users.users WHERE lower(username) = %s", (username,))
        row = cur.fetchone()
        assert row is not None
        sellers.append((int(row[0]), username))
    return sellers


def _products(
    rng: random.Random, cfg: Config, first_id: int, tag: str, today: date
) -> list[tuple[object, ...]]:
    rows = []
    now = datetime.now(UTC)
    for offset in range(cfg.products):
        product_id = first_id + offset
        min_quantity = rng.randint(5, 20)
        roll = rng.random()
        if roll < 0.05:
            quantity = 0
        elif roll < 0.13:
            quantity = rng.randint(1, min_quantity)
        else:
            quantity = rng.randint(min_quantity + 1, 500)
        expiration = None
        roll = rng.random()
        if roll < 0.02:
            expiration = today - timedelta(days=rng.randint(1, 60))
        elif roll < 0.05:
            expiration = today + timedelta(days=rng.randint(0, 7))
        elif roll < 0.12:
            expiration = today + timedelta(days=rng.randint(8, 400))
        price = Decimal(rng.randint(100, 20000)) + Decimal(rng.choice((0, 50, 99))) / 100
        status = 0 if rng.random() < 0.03 else 1
        name = f"{rng.choice(WORDS)} {tag}{offset:05d}"[:25]
        barcode = f"{tag}{offset:07d}"
        rows.append(
            (
                product_id,
                barcode,
                name,
                f"Producto de prueba {offset}",
                quantity,
                min_quantity,
                price,
                expiration,
                status,
                now,
                now,
            )
        )
    return rows


def _day_weights(cfg: Config, today: date) -> tuple[list[date], list[float]]:
    days = [today - timedelta(days=cfg.days - 1 - i) for i in range(cfg.days)]
    weights = [
        WEEKDAY_WEIGHT[day.weekday()] * (0.75 + 0.5 * index / max(1, cfg.days - 1))
        for index, day in enumerate(days)
    ]
    return days, weights


def _sale_times(rng: random.Random, cfg: Config, tz: ZoneInfo, now: datetime) -> list[datetime]:
    today = now.astimezone(tz).date()
    days, day_weights = _day_weights(cfg, today)
    hours = list(HOUR_WEIGHT)
    hour_weights = [HOUR_WEIGHT[h] for h in hours]
    picked_days = rng.choices(days, weights=day_weights, k=cfg.sales)
    picked_hours = rng.choices(hours, weights=hour_weights, k=cfg.sales)
    times = []
    for day, hour in zip(picked_days, picked_hours, strict=True):
        local = datetime(
            day.year,
            day.month,
            day.day,
            hour,
            rng.randrange(60),
            rng.randrange(60),
            rng.randrange(1_000_000),
            tzinfo=tz,
        )
        moment = local.astimezone(UTC)
        if moment > now:  # today's sales so far only
            moment = now - timedelta(seconds=rng.randint(1, 36_000))
        times.append(moment)
    times.sort()
    return times


def _lines_per_sale(rng: random.Random, sales: int, lines: int) -> list[int]:
    """Between 1 and 8 lines per sale (mostly 1-5), adding up to exactly `lines`."""
    if not sales <= lines <= 8 * sales:
        raise SystemExit("--lines must be between --sales and 8 x --sales")
    counts = [1] * sales
    extra = lines - sales
    while extra > 0:
        index = rng.randrange(sales)
        if counts[index] < 8 and (counts[index] < 5 or rng.random() < 0.2):
            counts[index] += 1
            extra -= 1
    return counts


def seed(cfg: Config) -> SeedResult:
    started = time.monotonic()
    rng = random.Random(cfg.seed)
    tz = ZoneInfo(cfg.timezone)
    now = datetime.now(UTC)
    today = now.astimezone(tz).date()
    with psycopg.connect(cfg.database_url) as conn, conn.cursor() as cur:
        sellers = _sellers(cur, cfg.sellers)
        first_product = _reserve_ids(cur, "products.items", cfg.products)
        first_sale = _reserve_ids(cur, "sales.sales", cfg.sales)
        tag = f"B{first_product}-"
        products = _products(rng, cfg, first_product, tag, today)
        with cur.copy(
            "COPY products.items (id, barcode, name, description, quantity, min_quantity, price,"
            " expiration_date, status, created_at, updated_at) FROM STDIN"
        ) as copy:
            for row in products:
                copy.write_row(row)

        # Popularity: a Zipf-like curve over a shuffled catalogue; ~2 % are never sold.
        sellable = [row for row in products if rng.random() >= 0.02]
        rng.shuffle(sellable)
        cumulative = list(itertools.accumulate(1.0 / (rank + 10) for rank in range(len(sellable))))
        total_weight = cumulative[-1]

        times = _sale_times(rng, cfg, tz, now)
        counts = _lines_per_sale(rng, cfg.sales, cfg.lines)
        seller_weights = [3 if index == 0 else 10 + index for index in range(len(sellers))]
        picked_sellers = rng.choices(sellers, weights=seller_weights, k=cfg.sales)
        methods = [m for m, _ in PAYMENT_METHODS]
        picked_methods = rng.choices(methods, weights=[w for _, w in PAYMENT_METHODS], k=cfg.sales)
        with cur.copy(
            "COPY sales.sales (id, created_at, updated_at, vendor_id, vendor_username,"
            " payment_method) FROM STDIN"
        ) as copy:
            for offset, moment in enumerate(times):
                seller_id, seller_name = picked_sellers[offset]
                copy.write_row(
                    (
                        first_sale + offset,
                        moment,
                        moment,
                        seller_id,
                        seller_name,
                        picked_methods[offset],
                    )
                )
        quantities = [q for q, _ in LINE_QUANTITY]
        quantity_weights = [w for _, w in LINE_QUANTITY]
        written = 0
        with cur.copy(
            "COPY sales.sale_lines (sale_id, item_id, item_name, quantity, unit_price) FROM STDIN"
        ) as copy:
            for offset, count in enumerate(counts):
                chosen: set[int] = set()
                while len(chosen) < count:
                    pick = bisect.bisect_left(cumulative, rng.random() * total_weight)
                    chosen.add(min(pick, len(sellable) - 1))
                line_quantities = rng.choices(quantities, weights=quantity_weights, k=count)
                for index, quantity in zip(chosen, line_quantities, strict=True):
                    product = sellable[index]
                    copy.write_row(
                        (first_sale + offset, product[0], product[2], quantity, product[6])
                    )
                written += count
        conn.commit()
        conn.autocommit = True
        for table in ("products.items", "sales.sales", "sales.sale_lines", "users.users"):
            cur.execute(f"ANALYZE {table}")
    return SeedResult(
        first_product_id=first_product,
        first_sale_id=first_sale,
        products=cfg.products,
        sales=cfg.sales,
        lines=written,
        seller_ids=[seller_id for seller_id, _ in sellers],
        seconds=time.monotonic() - started,
    )


DEFAULTS = Config(database_url="")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.seed_shop",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--products", type=int, default=DEFAULTS.products)
    parser.add_argument("--sales", type=int, default=DEFAULTS.sales)
    parser.add_argument("--lines", type=int, default=DEFAULTS.lines)
    parser.add_argument("--days", type=int, default=DEFAULTS.days)
    parser.add_argument("--sellers", type=int, default=DEFAULTS.sellers)
    parser.add_argument("--seed", type=int, default=DEFAULTS.seed)
    parser.add_argument("--timezone", default=DEFAULT_TZ)
    args = parser.parse_args(argv)
    result = seed(
        Config(
            database_url=args.database_url,
            products=args.products,
            sales=args.sales,
            lines=args.lines,
            days=args.days,
            sellers=args.sellers,
            seed=args.seed,
            timezone=args.timezone,
        )
    )
    print(
        f"seeded {result.products} products, {result.sales} sales, {result.lines} lines, "
        f"{len(result.seller_ids)} sellers in {result.seconds:.1f} s",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
