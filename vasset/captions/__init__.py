"""Captions: WebVTT / SRT per language, in playurl and as the HLS master's SUBTITLES group."""
