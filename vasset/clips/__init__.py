"""Clips: new videos made from time ranges of a source, with an optional intro and outro."""
