"""Videos: the lifecycle state machine, status, media info and deletion."""
