"""The import report: counts per kind, every data problem under its rule, ids that changed.

`RULES` is the one list of data-problem rules (docs/upgrading-from-stockmanager.md quotes it):
each problem found in the file is reported under one rule, never fixed silently.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Final

KINDS: Final = ("users", "products", "sales", "sale_lines", "notifications", "audit_log")

RULES: Final[dict[str, str]] = {
    "duplicate_username": "username already used by an earlier upstream user (case-insensitive):"
    " renamed to <name>_<upstream id>",
    "duplicate_email": "e-mail already used by an earlier or a local user: renamed to"
    " <local part>+<upstream id>@<domain>",
    "invalid_username": "username empty, too long or containing '@': cleaned (shortened, '@' ->"
    " '_', empty -> user<upstream id>)",
    "invalid_email": "e-mail empty or malformed: replaced by user<upstream id>@invalid.local",
    "invalid_role": "role not root/admin/vendedor (any case): imported as vendedor",
    "second_root": "a root account exists here already (exactly one is allowed): imported as admin",
    "invalid_status": "status/application/is_read not a known value: 1 / accepted / false",
    "negative_stock": "negative quantity: clamped to 0 (no ledger row: no unit arrived)",
    "invalid_number": "NULL or malformed price/quantity/minimum: price 0, quantity 0, minimum 5",
    "negative_price": "negative price: 0",
    "text_too_long": "name (25), description (200) or other text over our limit: shortened",
    "invalid_barcode": "barcode over 20 characters or repeated: imported without barcode",
    "invalid_date": "NULL or malformed date: product/user times now, expiration date empty;"
    " a sale, notification or audit entry without a valid date is skipped",
    "deleted_product": "sale lines point at a product missing from the file: the product is"
    " recreated disabled as 'Producto eliminado #<id>' at the line's price, lines kept",
    "missing_seller": "sale's seller missing from the file: kept with seller id 0 and the"
    " legacy `vendedor` name (or 'desconocido')",
    "orphan_line": "sale line whose sale is missing: skipped",
    "sale_without_lines": "sale header without lines (upstream's failed single sale): skipped",
    "invalid_line": "sale line with quantity <= 0: skipped",
    "merged_lines": "several lines of one product in one sale: merged (quantities summed,"
    " unit price = line total / quantity)",
    "orphan_notification": "notification of a user missing from the file: skipped",
    "orphan_audit_user": "audit entry of a user missing from the file: kept without user",
    "invalid_json": "audit old/new value not valid JSON: kept as a JSON string",
    "invalid_ip": "audit IP address not an IP: empty",
    "username_matched": "upstream user has the username of a local user: merged into it (the"
    " local account is left unchanged)",
    "barcode_matched": "upstream product has the barcode of a local product: merged into it"
    " (the local product, its stock included, is left unchanged)",
}

EXAMPLES_PER_RULE: Final = 20
"""Problems listed one by one per rule in the text report (the JSON report lists all)."""


@dataclass(slots=True)
class KindCounts:
    read: int = 0  # rows in the file
    imported: int = 0  # new rows here
    matched: int = 0  # merged into an existing local row (username / barcode)
    already: int = 0  # imported by an earlier run (nothing written)
    skipped: int = 0  # not imported (a rule said so)


@dataclass(frozen=True, slots=True)
class Problem:
    rule: str
    kind: str
    upstream_id: int | None
    detail: str


@dataclass(frozen=True, slots=True)
class IdChange:
    kind: str
    upstream_id: int
    local_id: int
    reason: str


@dataclass(slots=True)
class Report:
    path: str
    generation: str = ""
    source: str = ""
    fingerprint: str = ""
    dry_run: bool = False
    counts: dict[str, KindCounts] = field(default_factory=lambda: {k: KindCounts() for k in KINDS})
    problems: list[Problem] = field(default_factory=list)
    id_changes: list[IdChange] = field(default_factory=list)
    days: int = 0  # business days whose metrics were rebuilt
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)  # seconds per step

    def problem(self, rule: str, kind: str, upstream_id: int | None, detail: str) -> None:
        assert rule in RULES, rule
        self.problems.append(Problem(rule, kind, upstream_id, detail))

    def id_changed(self, kind: str, upstream_id: int, local_id: int, reason: str) -> None:
        self.id_changes.append(IdChange(kind, upstream_id, local_id, reason))

    @property
    def imported_anything(self) -> bool:
        return any(c.imported for c in self.counts.values())

    def by_rule(self) -> dict[str, list[Problem]]:
        grouped: dict[str, list[Problem]] = defaultdict(list)
        for problem in self.problems:
            grouped[problem.rule].append(problem)
        return dict(grouped)

    def as_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "generation": self.generation,
            "source": self.source,
            "fingerprint": self.fingerprint,
            "dry_run": self.dry_run,
            "counts": {
                kind: {
                    "read": c.read,
                    "imported": c.imported,
                    "matched": c.matched,
                    "already": c.already,
                    "skipped": c.skipped,
                }
                for kind, c in self.counts.items()
            },
            "problems": {
                rule: {
                    "rule": RULES[rule],
                    "count": len(found),
                    "rows": [
                        {"kind": p.kind, "upstream_id": p.upstream_id, "detail": p.detail}
                        for p in found
                    ],
                }
                for rule, found in self.by_rule().items()
            },
            "id_changes": [
                {
                    "kind": c.kind,
                    "upstream_id": c.upstream_id,
                    "local_id": c.local_id,
                    "reason": c.reason,
                }
                for c in self.id_changes
            ],
            "metrics_days_rebuilt": self.days,
            "seconds": round(self.seconds, 2),
            "phases": {name: round(seconds, 2) for name, seconds in self.phases.items()},
        }

    def as_text(self) -> str:
        mode = " (dry run: nothing was written)" if self.dry_run else ""
        lines = [
            f"import-upstream {self.path}{mode}",
            f"  schema generation: {self.generation}; source {self.source};"
            f" file sha256 {self.fingerprint[:16]}…",
            "",
            f"  {'':14}{'read':>9}{'imported':>10}{'matched':>9}{'already':>9}{'skipped':>9}",
        ]
        for kind, c in self.counts.items():
            lines.append(
                f"  {kind:14}{c.read:>9}{c.imported:>10}{c.matched:>9}{c.already:>9}{c.skipped:>9}"
            )
        grouped = self.by_rule()
        lines += ["", f"  data problems: {len(self.problems)}" + ("" if grouped else " (none)")]
        for rule, found in grouped.items():
            lines.append(f"  - {rule} ({len(found)}): {RULES[rule]}")
            for p in found[:EXAMPLES_PER_RULE]:
                lines.append(f"      {p.kind} #{p.upstream_id}: {p.detail}")
            if len(found) > EXAMPLES_PER_RULE:
                lines.append(f"      … {len(found) - EXAMPLES_PER_RULE} more (--json lists all)")
        lines += ["", f"  ids not kept: {len(self.id_changes)}"]
        for change in self.id_changes[:EXAMPLES_PER_RULE]:
            lines.append(
                f"      {change.kind} #{change.upstream_id} -> #{change.local_id}: {change.reason}"
            )
        if len(self.id_changes) > EXAMPLES_PER_RULE:
            lines.append(
                f"      … {len(self.id_changes) - EXAMPLES_PER_RULE} more (--json lists all)"
            )
        lines += [
            "",
            f"  metrics {'to rebuild' if self.dry_run else 'rebuilt'} for {self.days} business"
            f" days; took {self.seconds:.1f} s",
        ]
        return "\n".join(lines)
