"""Tests of the Python SDK (clients/python) against a real vasset server."""
