"""Pieces of bench/load.py that tests/test_load_faults.py reuses: processes, client, sampler."""
