"""Per-app named transcode templates (stored TranscodeOptions) and template= on the calls."""
