"""Request bodies (Content-Length or chunked, read in pieces); forms streamed to a file."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable
from typing import Any

from .model import CHUNK, ConnectionDropped, OssError, crc64_update


class Body:
    """Reads a request body delimited by Content-Length or chunked transfer encoding."""

    def __init__(
        self, rfile: Any, length: int | None, chunked: bool, on_bytes: Callable[[int], None]
    ) -> None:
        self._rfile = rfile
        self._left = length if length is not None else 0
        self._chunked = chunked
        self._chunk_left = 0
        self._done = not chunked and not self._left
        self._on_bytes = on_bytes
        self.limit: int | None = None  # fault injection: drop after this many bytes
        self.received = 0

    @property
    def done(self) -> bool:
        """Whether the whole body has been consumed."""
        return self._done

    def _raw(self, n: int) -> bytes:
        if self.limit is not None and self.received >= self.limit:
            raise ConnectionDropped("fault: connection dropped mid-body")
        if self.limit is not None:
            n = min(n, self.limit - self.received)
        try:
            data = self._rfile.read(n)
        except OSError as exc:
            raise ConnectionDropped(str(exc)) from exc
        if not data:
            raise ConnectionDropped("client closed the connection mid-body")
        self.received += len(data)
        self._on_bytes(len(data))
        return data

    def _line(self) -> bytes:
        try:
            line = self._rfile.readline(65537)
        except OSError as exc:
            raise ConnectionDropped(str(exc)) from exc
        if not line:
            raise ConnectionDropped("client closed the connection mid-body")
        return line

    def read(self, n: int = CHUNK) -> bytes:
        """Up to n bytes of the body; b'' once it is all read."""
        if self._done:
            return b""
        if not self._chunked:
            data = self._raw(min(n, self._left))
            self._left -= len(data)
            self._done = self._left == 0
            return data
        if self._chunk_left == 0:
            line = self._line().split(b";", 1)[0].strip()
            try:
                size = int(line, 16)
            except ValueError:
                raise ConnectionDropped("malformed chunk size") from None
            if size == 0:
                while self._line() not in (b"\r\n", b"\n"):
                    pass  # trailers
                self._done = True
                return b""
            self._chunk_left = size
        data = self._raw(min(n, self._chunk_left))
        self._chunk_left -= len(data)
        if self._chunk_left == 0:
            self._line()  # CRLF after the chunk data
        return data

    def read_all(self, limit: int = 16 << 20) -> bytes:
        """The whole (small) body."""
        out = bytearray()
        while chunk := self.read():
            out += chunk
            if len(out) > limit:
                raise OssError(400, "EntityTooLarge", "Your proposed upload exceeds the limit.")
        return bytes(out)

    def drain(self, limit: int) -> bool:
        """Read and discard up to limit bytes; True when the body was consumed."""
        seen = 0
        while not self._done and seen <= limit:
            seen += len(self.read())
        return self._done


def parse_form(
    body: Body, boundary: bytes, path: str
) -> tuple[dict[str, str], str, str, str, int, bytes, int]:
    """Stream a form: (lower-cased fields, filename, file type, path, size, md5, crc64)."""
    # small fields are kept in memory, the ``file`` part goes to path; OSS requires the file to
    # be the last field, so everything after it is ignored
    malformed = OssError(
        400,
        "MalformedPOSTRequest",
        "The body of your POST request is not well-formed multipart/form-data.",
    )
    delim = b"\r\n--" + boundary
    buf = bytearray(b"\r\n")  # so the first boundary matches the same delimiter
    fields: dict[str, str] = {}

    def fill() -> bool:
        chunk = body.read()
        buf.extend(chunk)
        return bool(chunk)

    def read_until(marker: bytes, limit: int = 1 << 20) -> bytes:
        while (idx := buf.find(marker)) < 0:
            if len(buf) > limit or not fill():
                raise malformed
        out = bytes(buf[:idx])
        del buf[: idx + len(marker)]
        return out

    read_until(delim)
    while True:
        while len(buf) < 2 and fill():
            pass
        if buf[:2] == b"--":
            raise malformed  # closing boundary before any file part
        read_until(b"\r\n")
        raw_headers = read_until(b"\r\n\r\n", 64 << 10).decode("utf-8", "replace")
        disposition, ctype = "", ""
        for line in raw_headers.split("\r\n"):
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-disposition":
                disposition = value
            elif name.strip().lower() == "content-type":
                ctype = value.strip()
        params: dict[str, str] = {}
        for piece in disposition.split(";")[1:]:
            pname, _, pvalue = piece.strip().partition("=")
            params[pname.lower()] = pvalue.strip().strip('"')
        field_name = params.get("name", "")
        if field_name.lower() != "file":
            fields[field_name.lower()] = read_until(delim, 1 << 20).decode("utf-8", "replace")
            continue
        md5 = hashlib.md5()
        crc = 0
        size = 0
        keep = len(delim)
        try:
            with open(path, "wb") as f:
                while True:
                    idx = buf.find(delim)
                    if idx >= 0:
                        data = bytes(buf[:idx])
                        del buf[: idx + len(delim)]
                    else:
                        data = bytes(buf[:-keep]) if len(buf) > keep else b""
                        del buf[: len(data)]
                    if data:
                        md5.update(data)
                        crc = crc64_update(data, crc)
                        f.write(data)
                        size += len(data)
                    if idx >= 0:
                        break
                    if not fill():
                        raise malformed
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
        # whatever follows the file part (the closing "--" and epilogue) is read and ignored
        while fill():
            pass
        return fields, params.get("filename", ""), ctype, path, size, md5.digest(), crc
