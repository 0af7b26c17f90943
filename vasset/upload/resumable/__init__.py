"""Standard resumable-upload protocols (tus 1.0 and the IETF draft) on vasset's upload records."""
