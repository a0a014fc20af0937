"""The hand-built shop of the exact-value tests (isolated database).

Window of reference: 2001-03-05 (Monday) .. 2001-03-11 (Sunday); previous window
2001-02-26 .. 2001-03-04. Sales sit on the midnights (business time zone, UTC-3) around both:

| sale | local time          | seller | lines                        | total   | window   |
|------|---------------------|--------|------------------------------|---------|----------|
| S0   | 2001-02-25 23:59:59 | ana    | Yerba x1 @100                | 100.00  | none     |
| S2   | 2001-02-26 00:00:00 | beto   | Azúcar x1 @250.50            | 250.50  | previous |
| S1   | 2001-03-04 23:59:59 | ana    | Yerba x2 @100                | 200.00  | previous |
| S3   | 2001-03-05 00:00:00 | ana    | Yerba x1 @100, Azúcar x2 @250.50 | 601.00 | current |
| S4   | 2001-03-05 15:30:00 | beto   | Café x3 @80                  | 240.00  | current  |
| S5   | 2001-03-07 10:15:00 | ana    | Yerba x5 @95 (older price)   | 475.00  | current  |
| S6   | 2001-03-11 23:59:59 | carla* | Té x1 @10                    | 10.00   | current  |
| S7   | 2001-03-12 00:00:00 | ana    | Yerba x1 @100                | 100.00  | none     |

(*carla is disabled: her sale counts in the totals, she is not listed among the sellers.)
Recent sales: R1 yesterday 23:59:59 (ana, Pan x1 @50), R2 today 00:00:00 (beto, Yerba x2 @100).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from tests.metrics.support import (
    TZ,
    Line,
    business_today,
    create_product,
    create_sale,
    create_user,
    local,
    wait_clear_of_midnight,
)


@dataclass(frozen=True)
class Shop:
    today: date
    ana: int
    beto: int
    carla: int
    yerba: int
    azucar: int
    cafe: int
    te: int
    sal: int
    aceite: int
    leche: int
    queso: int
    pan: int
    arroz: int
    sales: dict[str, int]


def build_shop(url: str) -> Shop:
    # Every "today" figure of the tests must refer to the same business day.
    wait_clear_of_midnight(margin=150)
    today = business_today()
    ana = create_user(url, "ana", "vendedor")
    beto = create_user(url, "beto", "admin")
    carla = create_user(url, "carla", "vendedor", status=0)

    def product(name: str, **kwargs: object) -> int:
        return create_product(url, name, **kwargs)  # type: ignore[arg-type]

    yerba = product("Yerba", barcode="7790001", price="100.00", quantity=50, min_quantity=5)
    azucar = product("Azúcar", price="250.50", quantity=3, min_quantity=5)
    cafe = product("Café", barcode="7790003", price="80.00", quantity=0, min_quantity=2)
    te = product("Té", barcode="7790004", price="10.00", quantity=20, min_quantity=5, status=0)
    sal = product("Sal", barcode="7790005", price="5.00", quantity=7, min_quantity=10)
    aceite = product(
        "Aceite",
        barcode="7790006",
        price="300.00",
        quantity=100,
        min_quantity=10,
        expiration_date=today + timedelta(days=3),
    )
    leche = product(
        "Leche",
        barcode="7790007",
        price="120.00",
        quantity=12,
        min_quantity=5,
        expiration_date=today - timedelta(days=10),
    )
    queso = product(
        "Queso",
        barcode="7790008",
        price="900.00",
        quantity=2,
        min_quantity=1,
        status=0,
        expiration_date=today + timedelta(days=1),
    )
    pan = product(
        "Pan",
        barcode="7790009",
        price="50.00",
        quantity=30,
        min_quantity=5,
        expiration_date=today + timedelta(days=7),
    )
    arroz = product(
        "Arroz",
        barcode="7790010",
        price="40.00",
        quantity=6,
        min_quantity=6,
        expiration_date=today + timedelta(days=8),
    )

    A, B, C = (ana, "ana"), (beto, "beto"), (carla, "carla")
    sales = {
        "S0": create_sale(
            url, local(2001, 2, 25, 23, 59, 59), A, [Line(yerba, "Yerba", 1, "100.00")]
        ),
        "S2": create_sale(
            url, local(2001, 2, 26, 0, 0, 0), B, [Line(azucar, "Azúcar", 1, "250.50")]
        ),
        "S1": create_sale(
            url, local(2001, 3, 4, 23, 59, 59), A, [Line(yerba, "Yerba", 2, "100.00")]
        ),
        "S3": create_sale(
            url,
            local(2001, 3, 5, 0, 0, 0),
            A,
            [Line(yerba, "Yerba", 1, "100.00"), Line(azucar, "Azúcar", 2, "250.50")],
        ),
        "S4": create_sale(url, local(2001, 3, 5, 15, 30, 0), B, [Line(cafe, "Café", 3, "80.00")]),
        "S5": create_sale(url, local(2001, 3, 7, 10, 15, 0), A, [Line(yerba, "Yerba", 5, "95.00")]),
        "S6": create_sale(url, local(2001, 3, 11, 23, 59, 59), C, [Line(te, "Té", 1, "10.00")]),
        "S7": create_sale(url, local(2001, 3, 12, 0, 0, 0), A, [Line(yerba, "Yerba", 1, "100.00")]),
    }
    yesterday = today - timedelta(days=1)
    sales["R1"] = create_sale(
        url,
        datetime.combine(yesterday, datetime.max.time().replace(microsecond=0), TZ),
        A,
        [Line(pan, "Pan", 1, "50.00")],
    )
    sales["R2"] = create_sale(
        url,
        datetime.combine(today, datetime.min.time(), TZ),
        B,
        [Line(yerba, "Yerba", 2, "100.00")],
    )
    return Shop(
        today=today,
        ana=ana,
        beto=beto,
        carla=carla,
        yerba=yerba,
        azucar=azucar,
        cafe=cafe,
        te=te,
        sal=sal,
        aceite=aceite,
        leche=leche,
        queso=queso,
        pan=pan,
        arroz=arroz,
        sales=sales,
    )
