"""Test helpers: a signing HTTP client and a real server process."""
