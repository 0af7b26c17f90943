"""Per-app image assets (watermarks): PNG validation, storage, the /video/assets calls."""
