"""Media building blocks: ladder planning, FFmpeg command lines, probing and a sandboxed runner.

Nothing here knows about databases, queues or storage; the worker composes these pieces.
"""
