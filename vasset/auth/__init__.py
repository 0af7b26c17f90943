"""Authentication: signed API calls and upload tokens."""
