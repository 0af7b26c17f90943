"""Events: the outbox of client-visible changes, webhooks that deliver them, and live SSE."""
