"""Safe text matching: user input in LIKE patterns never acts as a wildcard."""

from __future__ import annotations

LIKE_ESCAPE = "\\"


def like_contains(term: str) -> str:
    """`%term%` with `\\`, `%` and `_` in the term escaped (use with `escape=LIKE_ESCAPE`)."""
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
