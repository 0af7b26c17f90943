"""vasset: a video asset service."""
