"""Metrics service: the dashboard figures (`/api/stats`, `/api/metrics`, `/api/never-sold`).

It owns no business data: it reads the products, sales and users schemas through their published
read-only views, plus its own per-day rollups of past sales (schema `metrics`, see rollups.py).
"""
