"""Prometheus metrics: definitions (registry.py), scrape-time state (collectors.py), the API's
timing middleware and /metrics route (http.py), the worker's exporter (exporter.py)."""
