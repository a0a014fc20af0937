"""Sales service: sales by barcode and in bulk, history, sale edits, idempotent checkout."""
