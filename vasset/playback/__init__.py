"""Playback: signed, expiring play URLs, snapshot URLs, and serving files from local disk."""
