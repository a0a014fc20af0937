"""Products service: catalogue, stock (the one stock function and its ledger), CSV import/export."""
