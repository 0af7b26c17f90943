"""Resumable, verified uploads."""
