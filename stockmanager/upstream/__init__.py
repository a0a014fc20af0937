"""`stockmanager import-upstream`: bring an upstream StockManager SQLite database over.

The kernel side reads the SQLite file (`source`), turns its rows into typed records under the
documented data-problem rules (`rules`, `records`) and keeps the report (`report`). Each
service's `upstream_import` module writes its own schema (SQL lives with the schema's owner);
`run` is the composition: one PostgreSQL transaction for the whole import (docs/
upgrading-from-stockmanager.md).
"""
