"""vasset-cli: upload files and query videos from a shell; JSON answers on stdout."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

from vasset_client import errors
from vasset_client.client import Client
from vasset_client.events import STATUS_EVENT, Event
from vasset_client.models import STATUSES
from vasset_client.uploader import DEFAULT_STATE_DIR, Uploader

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """A byte count such as 1048576, 512K, 8M or 1.5GiB (binary units)."""
    match = _SIZE.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GiB"


class ProgressBar:
    """A plain-text progress line on a stream (carriage-return updates, no dependencies)."""

    def __init__(self, label: str, stream: TextIO | None = None, interval: float = 0.2) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.interval = interval
        self.started = time.monotonic()
        self._last = 0.0
        self._shown = False
        self._final: tuple[int, int] | None = None

    def __call__(self, done: int, total: int) -> None:
        """Show done of total (rate-limited, the final value always)."""
        now = time.monotonic()
        if done < total and now - self._last < self.interval:
            return
        if self._final == (done, total):
            return
        if done >= total:
            self._final = (done, total)
        self._last = now
        width = 30
        frac = done / total if total else 1.0
        filled = int(frac * width)
        speed = done / max(now - self.started, 1e-6)
        line = (
            f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {frac * 100:5.1f}% "
            f"{_human(done)}/{_human(total)} {_human(speed)}/s"
        )
        self.stream.write(line)
        self._shown = True
        if done >= total:
            self.stream.write("\n")  # the final value ends its line
            self._shown = False
        self.stream.flush()

    def close(self) -> None:
        """End the line."""
        if self._shown:
            self.stream.write("\n")
            self.stream.flush()
            self._shown = False


def _common(parser: argparse.ArgumentParser, suppress: bool) -> None:
    default: Any = argparse.SUPPRESS if suppress else None
    g = parser.add_argument_group("connection")
    g.add_argument("--url", default=default, help="API base URL (env VASSET_URL)")
    g.add_argument("--app-key", default=default, help="app key (env VASSET_APP_KEY)")
    g.add_argument(
        "--app-secret",
        default=default,
        help="app secret (env VASSET_APP_SECRET); write --app-secret=VALUE",
    )
    g.add_argument(
        "--http-timeout",
        type=float,
        default=argparse.SUPPRESS if suppress else 60.0,
        help="seconds per HTTP request (default 60)",
    )
    g.add_argument(
        "--retries",
        type=int,
        default=argparse.SUPPRESS if suppress else 4,
        help="retries per request on network errors, 5xx and 429 (default 4)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree of vasset-cli."""
    parser = argparse.ArgumentParser(
        prog="vasset-cli", description="Upload and manage videos on a vasset server."
    )
    _common(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def cmd(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        _common(p, suppress=True)
        return p

    p = cmd("upload", "upload a file (resumable; prints the video as JSON)")
    p.add_argument("file")
    p.add_argument("--auto", action="store_true", help="transcode when the upload completes")
    p.add_argument("--priority", type=int, default=0, help="transcode priority (higher first)")
    p.add_argument("--part-size", type=parse_size, help="part size, e.g. 8M (default: auto)")
    p.add_argument("--parallel", type=int, default=4, help="parts in flight (default 4)")
    p.add_argument("--name", help="file name to record (default: the file's name)")
    p.add_argument(
        "--state-dir",
        default=os.environ.get("VASSET_STATE_DIR", DEFAULT_STATE_DIR),
        help=f"where resume state is kept (env VASSET_STATE_DIR, default {DEFAULT_STATE_DIR})",
    )
    p.add_argument(
        "--limit-rate", type=parse_size, help="upload at most this many bytes per second, e.g. 2M"
    )
    p.add_argument(
        "--direct",
        action="store_true",
        help="send the bytes straight to object storage (servers storing on OSS)",
    )
    p.add_argument(
        "--no-instant",
        action="store_true",
        help="send at once, each part with its own MD5 (no instant upload of bytes the server has)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")

    p = cmd("status", "a video's status")
    p.add_argument("vid", type=int)

    p = cmd("wait", "wait until a video reaches a status (default playable)")
    p.add_argument("vid", type=int)
    p.add_argument(
        "--until", default="playable", choices=[s for s in STATUSES if not s.endswith("failed")]
    )
    p.add_argument("--timeout", type=float, default=600.0, help="seconds (default 600)")

    p = cmd(
        "watch",
        "live progress of a video until it is playable or failed"
        " (exit 0 playable, 3 failed or deleted, 4 timeout)",
    )
    p.add_argument("vid", type=int)
    p.add_argument("--timeout", type=float, help="give up after this many seconds (default: never)")
    p.add_argument("--json", action="store_true", help="one JSON event per line")

    p = cmd("list", "this app's videos, newest first (one page; --all follows the cursors)")
    p.add_argument("--status", choices=list(STATUSES), help="only videos in this status")
    p.add_argument("--limit", type=int, help="videos per page, 1-100 (default 20)")
    p.add_argument("--cursor", help="next_cursor of the previous page")
    p.add_argument("--all", action="store_true", help="every page, as one list")

    p = cmd("playurl", "signed play URLs of a video")
    p.add_argument("vid", type=int)
    p.add_argument("--definition")
    p.add_argument("--format", choices=["mp4", "hls"])
    p.add_argument("--expires", type=int, help="URL lifetime in seconds")

    p = cmd("snapshot", "snapshot images of a video")
    p.add_argument("vid", type=int)
    p.add_argument("--expires", type=int, help="URL lifetime in seconds")

    p = cmd("mediainfo", "media facts and renditions of a video")
    p.add_argument("vid", type=int)

    p = cmd("delete", "delete a video")
    p.add_argument("vid", type=int)

    p = cmd("transcode", "queue a transcode of an uploaded video")
    p.add_argument("vid", type=int)
    p.add_argument("--priority", type=int)
    p.add_argument("--definitions", help="comma-separated list, e.g. 480p,720p")

    p = cmd("retranscode", "transcode again; renditions are replaced when done")
    p.add_argument("vid", type=int)

    p = cmd("resume", "the state of an upload (missing parts)")
    p.add_argument("upid")

    cmd("limits", "the server's upload limits")
    return parser


def make_client(args: argparse.Namespace) -> Client:
    """A Client from the options, falling back to VASSET_* environment variables."""
    url = getattr(args, "url", None) or os.environ.get("VASSET_URL")
    key = getattr(args, "app_key", None) or os.environ.get("VASSET_APP_KEY")
    secret = getattr(args, "app_secret", None) or os.environ.get("VASSET_APP_SECRET")
    missing = [
        name
        for name, value in (("--url", url), ("--app-key", key), ("--app-secret", secret))
        if not value
    ]
    if missing:
        raise SystemExit(f"vasset-cli: missing {', '.join(missing)} (or VASSET_* variables)")
    assert url and key and secret
    return Client(url, key, secret, timeout=args.http_timeout, retries=args.retries)


def _emit(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    sys.stdout.flush()


def _upload(client: Client, args: argparse.Namespace) -> dict[str, Any]:
    show = not args.no_progress
    hashing = ProgressBar("hash  ") if show else None
    sending = ProgressBar("upload") if show else None
    uploader = Uploader(
        client,
        args.file,
        part_size=args.part_size,
        parallel=args.parallel,
        auto=args.auto,
        priority=args.priority,
        state_dir=args.state_dir,
        on_progress=sending,
        on_hash_progress=hashing,
        name=args.name,
        max_rate=args.limit_rate,
        direct=args.direct,
        instant=not args.no_instant,
    )
    try:
        result = uploader.run()
    finally:
        for bar in (hashing, sending):
            if bar is not None:
                bar.close()
    if show:
        sys.stderr.write(f"vid {result.vid}\n")
    return result.to_dict()


#: vasset-cli watch's exit codes beyond 0 (playable), 1 (API error) and 2 (usage).
WATCH_FAILED = 3
WATCH_TIMEOUT = 4
_FAILED = {"upload.failed": "upload_failed", "video.transcode.failed": "transcode_failed"}


def _event_line(event: Event) -> str:
    d = event.data
    parts = [event.timestamp or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())]
    parts += [f"vid {event.vid}", event.type, str(event.status)]
    if event.seq is not None:
        parts.insert(2, f"#{event.seq}")
    if event.progress is not None:
        parts.append(f"{event.progress}%")
    for key in ("definition", "format", "reason", "error", "message", "count"):
        if d.get(key) is not None:
            parts.append(f"{key}={d[key]}")
    if event.synthesized:
        parts.append("(polled)")
    return " ".join(parts)


def _settled(client: Client, vid: int, event: Event) -> int | None:
    """The exit code when `event` is the video's current end state (not one replayed from its
    history, such as a failed transcode before a retranscode), else None."""
    if event.type == "video.deleted":
        try:
            client.status(vid)
        except errors.VideoNotFound:
            return WATCH_FAILED
        return None
    want = "playable" if event.type == "video.playable" else _FAILED.get(event.type)
    if want is None:
        return None
    if event.synthesized or client.status(vid).status == want:
        return 0 if want == "playable" else WATCH_FAILED
    return None


def _watch(client: Client, args: argparse.Namespace) -> int:
    """Print the video's events (its history, then live) until it settles; the exit code."""
    st = client.status(args.vid)  # VideoNotFound: exit 1 before waiting on nothing
    if st.status in ("playable", *_FAILED.values()):
        # Settled already: its events may be past retention, so do not wait for them.
        data = {"vid": args.vid, "status": st.status, "progress": st.progress}
        event = Event(None, STATUS_EVENT[st.status], data, synthesized=True)
        sys.stdout.write(_event_line(event) + "\n")
        return 0 if st.status == "playable" else WATCH_FAILED
    # since=0: replay what the outbox holds of this video, so nothing between the status call
    # and the stream's start can be missed.
    for event in client.events(vid=args.vid, since=0, timeout=args.timeout):
        if args.json:
            line = json.dumps({"id": event.id, "type": event.type, "data": event.data})
        else:
            line = _event_line(event)
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
        code = _settled(client, args.vid, event)
        if code is not None:
            return code
    sys.stderr.write(f"vasset-cli: video {args.vid} did not settle within {args.timeout:g} s\n")
    return WATCH_TIMEOUT


def run(args: argparse.Namespace) -> Any:
    """Execute one parsed command; returns the JSON-able answer."""
    with make_client(args) as client:
        c = args.command
        if c == "upload":
            return _upload(client, args)
        if c == "status":
            return client.status(args.vid).to_dict()
        if c == "wait":
            return client.wait(args.vid, until=args.until, timeout=args.timeout).to_dict()
        if c == "list":
            if args.all:
                videos = client.iter_videos(status=args.status, page_size=args.limit or 100)
                return {"videos": [v.to_dict() for v in videos], "next_cursor": None}
            page = client.list_videos(status=args.status, limit=args.limit, cursor=args.cursor)
            return page.to_dict()
        if c == "playurl":
            return client.playurl(
                args.vid, definition=args.definition, format=args.format, expires=args.expires
            ).to_dict()
        if c == "snapshot":
            return client.snapshot(args.vid, expires=args.expires).to_dict()
        if c == "mediainfo":
            return client.mediainfo(args.vid).to_dict()
        if c == "delete":
            return client.delete(args.vid).to_dict()
        if c == "transcode":
            return client.transcode(
                args.vid, priority=args.priority, definitions=args.definitions
            ).to_dict()
        if c == "retranscode":
            return client.retranscode(args.vid).to_dict()
        if c == "resume":
            return client.resume(args.upid).to_dict()
        if c == "limits":
            return client.limits().to_dict()
        raise SystemExit(f"vasset-cli: unknown command {c}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of vasset-cli; exit 0 on success, 1 on an API error, 2 on usage errors."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "watch":
            with make_client(args) as client:
                return _watch(client, args)
        _emit(run(args))
    except errors.VassetError as exc:
        sys.stderr.write(f"vasset-cli: {exc}\n")
        sys.stderr.write(json.dumps({"error": exc.to_dict()}, ensure_ascii=False) + "\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("\nvasset-cli: interrupted (run the same upload again to resume)\n")
        return 130
    except OSError as exc:
        sys.stderr.write(f"vasset-cli: {exc}\n")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
