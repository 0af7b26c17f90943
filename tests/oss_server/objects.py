"""Objects: spooling bodies to blob files, Put/Get/Head/Delete/Copy, ranges and stored headers."""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import secrets
import shutil
from collections.abc import Iterator
from urllib.parse import unquote

from .answers import el, http_date, iso, xml_doc
from .body import Body
from .model import (
    CHUNK,
    RESPONSE_OVERRIDES,
    STORED_HEADERS,
    OssError,
    Request,
    Segment,
    ServerState,
    StoredObject,
    crc64_update,
    no_such_key,
)


class ObjectsMixin(ServerState):
    """Whole-object operations and the storage helpers the other operations share."""

    def _new_blob_path(self) -> str:
        return os.path.join(self.data_dir, "blobs", secrets.token_hex(16))

    def _spool(self, body: Body, path: str) -> tuple[int, bytes, int]:
        """Stream the body into path; returns (size, md5 digest, crc64)."""
        md5 = hashlib.md5()
        crc = 0
        size = 0
        try:
            with open(path, "wb") as f:
                while chunk := body.read():
                    md5.update(chunk)
                    if self.crc64:
                        crc = crc64_update(chunk, crc)
                    f.write(chunk)
                    size += len(chunk)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
        return size, md5.digest(), crc

    @staticmethod
    def _check_content_md5(req: Request) -> bytes | None:
        value = req.headers.get("content-md5")
        if value is None:
            return None
        try:
            digest = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            digest = b""
        if len(digest) != 16:
            raise OssError(400, "InvalidDigest", "The Content-MD5 you specified was invalid.")
        return digest

    @staticmethod
    def _check_key(key: str) -> None:
        if not key or len(key.encode()) > 1023 or key.startswith(("/", "\\")):
            raise OssError(400, "InvalidObjectName", "The specified object is not valid.", Key=key)

    def _store_headers(self, req: Request) -> dict[str, str]:
        return {
            k: v
            for k, v in req.headers.items()
            if k.startswith("x-oss-meta-") or k in STORED_HEADERS
        }

    def _put_object(self, obj: StoredObject, forbid_overwrite: bool = False) -> None:
        with self._lock:
            old = self._objects.get(obj.key)
            if old is not None and forbid_overwrite:
                for seg in obj.segments:
                    with contextlib.suppress(OSError):
                        os.unlink(seg.path)
                raise OssError(409, "FileAlreadyExists", "The object you specified already exists.")
            self._objects[obj.key] = obj
        if old is not None:
            self._drop_segments(old.segments)

    @staticmethod
    def _drop_segments(segments: list[Segment]) -> None:
        for seg in segments:
            with contextlib.suppress(OSError):
                os.unlink(seg.path)

    def _get(self, key: str) -> StoredObject:
        with self._lock:
            obj = self._objects.get(key)
        if obj is None:
            raise no_such_key(key)
        return obj

    @staticmethod
    def _object_headers(obj: StoredObject) -> dict[str, str]:
        headers = {
            "Content-Type": obj.content_type,
            "ETag": f'"{obj.etag}"',
            "Last-Modified": http_date(obj.mtime),
            "Accept-Ranges": "bytes",
            "x-oss-object-type": obj.object_type,
            "x-oss-storage-class": "Standard",
            "x-oss-hash-crc64ecma": str(obj.crc64),
        }
        if obj.content_md5:
            headers["Content-MD5"] = obj.content_md5
        for name, value in obj.headers.items():
            headers[name.title() if not name.startswith("x-oss-") else name] = value
        return headers

    @staticmethod
    def _read_segments(obj: StoredObject, start: int, end: int) -> Iterator[bytes]:
        """Bytes [start, end] inclusive of an object, segment by segment."""
        pos = 0
        for seg in obj.segments:
            seg_start, seg_end = pos, pos + seg.size - 1
            pos += seg.size
            if seg_end < start or seg_start > end:
                continue
            with open(seg.path, "rb") as f:
                f.seek(max(start, seg_start) - seg_start)
                left = min(end, seg_end) - max(start, seg_start) + 1
                while left > 0:
                    chunk = f.read(min(CHUNK, left))
                    if not chunk:
                        return
                    left -= len(chunk)
                    yield chunk

    # object operations
    def _op_PutObject(self, req: Request, body: Body) -> tuple[int, dict[str, str], bytes]:
        self._check_key(req.key)
        want_md5 = self._check_content_md5(req)
        path = self._new_blob_path()
        size, md5, crc = self._spool(body, path)
        if want_md5 is not None and want_md5 != md5:
            os.unlink(path)
            raise OssError(
                400,
                "InvalidDigest",
                "The Content-MD5 you specified did not match what we received.",
            )
        obj = StoredObject(
            key=req.key,
            segments=[Segment(path, size)],
            size=size,
            etag=md5.hex().upper(),
            crc64=crc,
            mtime=self.now(),
            content_type=req.headers.get("content-type") or "application/octet-stream",
            content_md5=base64.b64encode(md5).decode(),
            headers=self._store_headers(req),
        )
        forbid = req.headers.get("x-oss-forbid-overwrite", "").lower() == "true"
        self._put_object(obj, forbid)
        return (
            200,
            {
                "ETag": f'"{obj.etag}"',
                "Content-MD5": obj.content_md5 or "",
                "x-oss-hash-crc64ecma": str(crc),
            },
            b"",
        )

    def _parse_range(
        self, req: Request, size: int
    ) -> tuple[int, int] | None:  # None: the whole object with 200
        value = req.headers.get("range")
        if not value:
            return None
        standard = req.headers.get("x-oss-range-behavior", "").lower() == "standard"
        unit, _, spec = value.partition("=")
        if unit.strip() != "bytes" or "," in spec:
            if "," in spec:
                raise OssError(416, "InvalidRange", "The requested range cannot be satisfied.")
            return None
        first, dash, last = spec.strip().partition("-")
        if not dash:
            return None
        try:
            if first == "":
                n = int(last)
                if n <= 0 or size == 0:
                    return None
                if n > size:
                    return (0, size - 1) if standard else None
                return size - n, size - 1
            start = int(first)
            end = int(last) if last else size - 1
        except ValueError:
            return None
        if start >= size:
            if standard:
                raise OssError(416, "InvalidRange", "The requested range cannot be satisfied.")
            return None
        if start > end:
            return None
        if end >= size:
            if not standard:
                return None  # OSS ignores out-of-range ends unless asked for standard ranges
            end = size - 1
        return start, end

    def _op_GetObject(
        self, req: Request, body: Body
    ) -> tuple[int, dict[str, str], Iterator[bytes]]:
        obj = self._get(req.key)
        headers = self._object_headers(obj)
        for param, header in RESPONSE_OVERRIDES.items():
            if param in req.query:
                headers[header] = req.query[param]
        rng = self._parse_range(req, obj.size)
        if rng is None:
            headers["Content-Length"] = str(obj.size)
            return 200, headers, self._read_segments(obj, 0, obj.size - 1)
        start, end = rng
        headers["Content-Length"] = str(end - start + 1)
        headers["Content-Range"] = f"bytes {start}-{end}/{obj.size}"
        # a part of the object has no CRC of the whole; OSS still sends the object's
        return 206, headers, self._read_segments(obj, start, end)

    def _op_HeadObject(self, req: Request, body: Body) -> tuple[int, dict[str, str], bytes]:
        obj = self._get(req.key)
        headers = self._object_headers(obj)
        headers["Content-Length"] = str(obj.size)
        return 200, headers, b""

    def _op_GetObjectMeta(self, req: Request, body: Body) -> tuple[int, dict[str, str], bytes]:
        obj = self._get(req.key)
        return (
            200,
            {
                "ETag": f'"{obj.etag}"',
                "Content-Length": str(obj.size),
                "Last-Modified": http_date(obj.mtime),
                "x-oss-last-access-time": http_date(obj.mtime),
            },
            b"",
        )

    def _op_DeleteObject(self, req: Request, body: Body) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            obj = self._objects.pop(req.key, None)
        if obj is not None:
            self._drop_segments(obj.segments)
        return 204, {}, b""

    def _op_CopyObject(self, req: Request, body: Body) -> tuple[int, dict[str, str], bytes]:
        self._check_key(req.key)
        source = req.headers["x-oss-copy-source"]
        src_bucket, _, src_key = unquote(source.lstrip("/")).partition("/")
        src_key = src_key.split("?versionId=")[0]
        if src_bucket != self.bucket:
            raise OssError(404, "NoSuchBucket", "The specified bucket does not exist.")
        src = self._get(src_key)
        segments = []
        for seg in src.segments:
            path = self._new_blob_path()
            try:
                os.link(seg.path, path)  # a hard link: a copy that costs nothing
            except OSError:
                shutil.copyfile(seg.path, path)
            segments.append(Segment(path, seg.size))
        replace = req.headers.get("x-oss-metadata-directive", "COPY").upper() == "REPLACE"
        obj = StoredObject(
            key=req.key,
            segments=segments,
            size=src.size,
            etag=src.etag,
            crc64=src.crc64,
            mtime=self.now(),
            content_type=(req.headers.get("content-type") if replace else src.content_type)
            or "application/octet-stream",
            object_type=src.object_type,
            content_md5=src.content_md5,
            headers=self._store_headers(req) if replace else dict(src.headers),
        )
        forbid = req.headers.get("x-oss-forbid-overwrite", "").lower() == "true"
        self._put_object(obj, forbid)
        xml = xml_doc(
            "CopyObjectResult", el("ETag", f'"{obj.etag}"') + el("LastModified", iso(obj.mtime))
        )
        return 200, {"Content-Type": "application/xml", "ETag": f'"{obj.etag}"'}, xml
