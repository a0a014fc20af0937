"""StockManager shared kernel: settings, database, errors, identity, events, logging, runtime.

No domain logic lives here; services and the gateway build on these pieces.
"""

__version__ = "0.1.0"
