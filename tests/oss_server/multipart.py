"""Multipart uploads: initiate, upload parts, list parts, complete without copying, abort, list."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import itertools
import os
import uuid
import xml.etree.ElementTree as ET
from urllib.parse import quote

from .answers import el, iso, xml_doc
from .body import Body
from .model import (
    MAX_PART_NUMBER,
    MIN_PART_SIZE,
    OssError,
    Part,
    Request,
    Segment,
    ServerState,
    StoredObject,
    Upload,
    crc64_combine,
    no_such_upload,
)


class MultipartMixin(ServerState):
    """Multipart uploads; a completed object keeps its part files as segments."""

    def _upload(self, req: Request) -> Upload:
        upload_id = req.query.get("uploadId", "")
        with self._lock:
            up = self._uploads.get(upload_id)
        if up is None or up.key != req.key:
            raise no_such_upload(upload_id)
        return up

    def _op_InitiateMultipartUpload(
        self, req: Request, body: Body
    ) -> tuple[int, dict[str, str], bytes]:
        self._check_key(req.key)
        up = Upload(
            upload_id=uuid.uuid4().hex.upper(),
            key=req.key,
            initiated=self.now(),
            content_type=req.headers.get("content-type") or "application/octet-stream",
            headers=self._store_headers(req),
        )
        with self._lock:
            self._uploads[up.upload_id] = up
        x = el("Bucket", self.bucket) + el("Key", req.key) + el("UploadId", up.upload_id)
        return 200, {"Content-Type": "application/xml"}, xml_doc("InitiateMultipartUploadResult", x)

    def _op_UploadPart(self, req: Request, body: Body) -> tuple[int, dict[str, str], bytes]:
        try:
            number = int(req.query.get("partNumber", ""))
        except ValueError:
            number = 0
        if not 1 <= number <= MAX_PART_NUMBER:
            raise OssError(
                400,
                "InvalidArgument",
                "Part number must be an integer between 1 and 10000, inclusive.",
                ArgumentName="partNumber",
            )
        up = self._upload(req)
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
        part = Part(number, path, size, md5.hex().upper(), crc, md5, self.now())
        with self._lock:
            live = self._uploads.get(up.upload_id)
            old = live.parts.get(number) if live is not None else None
            if live is not None:
                live.parts[number] = part
        if live is None:
            os.unlink(path)
            raise no_such_upload(up.upload_id)  # aborted or completed while we read the body
        if old is not None:
            with contextlib.suppress(OSError):
                os.unlink(old.path)
        headers = {
            "ETag": f'"{part.etag}"',
            "Content-MD5": base64.b64encode(md5).decode(),
            "x-oss-hash-crc64ecma": str(crc),
        }
        return 200, headers, b""

    def _op_ListParts(self, req: Request, body: Body) -> tuple[int, dict[str, str], bytes]:
        up = self._upload(req)
        max_parts = self._list_params(req, 1000, "max-parts")
        try:
            marker = int(req.query.get("part-number-marker") or 0)
        except ValueError:
            raise OssError(400, "InvalidArgument", "Invalid part-number-marker.") from None
        with self._lock:
            parts = sorted(
                (p for p in up.parts.values() if p.number > marker), key=lambda p: p.number
            )
        page = parts[:max_parts]
        truncated = len(parts) > max_parts
        x = el("Bucket", self.bucket) + el("Key", up.key) + el("UploadId", up.upload_id)
        x += el("PartNumberMarker", marker)
        x += el("NextPartNumberMarker", page[-1].number if page else marker)
        x += el("MaxParts", max_parts) + el("IsTruncated", str(truncated).lower())
        for p in page:
            x += (
                "<Part>"
                + el("PartNumber", p.number)
                + el("LastModified", iso(p.mtime))
                + el("ETag", f'"{p.etag}"')
                + el("HashCrc64ecma", p.crc64)
                + el("Size", p.size)
                + "</Part>"
            )
        return 200, {"Content-Type": "application/xml"}, xml_doc("ListPartsResult", x)

    def _op_CompleteMultipartUpload(
        self, req: Request, body: Body
    ) -> tuple[int, dict[str, str], bytes]:
        up = self._upload(req)
        complete_all = req.headers.get("x-oss-complete-all", "").lower() == "yes"
        data = body.read_all()
        if complete_all:
            if data:
                raise OssError(
                    400, "InvalidArgument", "Should not specify both complete all header and body."
                )
            with self._lock:
                wanted = [(n, up.parts[n].etag) for n in sorted(up.parts)]
        else:
            try:
                root = ET.fromstring(data)
            except ET.ParseError:
                raise OssError(
                    400, "MalformedXML", "The XML you provided was not well-formed."
                ) from None
            wanted = []
            for node in root.findall("Part"):
                try:
                    number = int(node.findtext("PartNumber") or "")
                except ValueError:
                    raise OssError(
                        400, "MalformedXML", "The XML you provided was not well-formed."
                    ) from None
                wanted.append((number, (node.findtext("ETag") or "").strip().strip('"')))
            if not wanted:
                raise OssError(400, "MalformedXML", "The XML you provided was not well-formed.")
        numbers = [n for n, _ in wanted]
        if any(b <= a for a, b in itertools.pairwise(numbers)):
            raise OssError(
                400,
                "InvalidPartOrder",
                "The list of parts was not in ascending order. Parts must be ordered by part "
                "number.",
                UploadId=up.upload_id,
            )
        with self._lock:
            if self._uploads.get(up.upload_id) is not up:
                raise no_such_upload(up.upload_id)
            chosen: list[Part] = []
            for number, etag in wanted:
                part = up.parts.get(number)
                if part is None or part.etag.upper() != etag.upper():
                    raise OssError(
                        400,
                        "InvalidPart",
                        "One or more of the specified parts could not be found or the specified "
                        "entity tag might not have matched the part's entity tag.",
                        UploadId=up.upload_id,
                        PartNumber=number,
                        ETag=etag,
                    )
                chosen.append(part)
            for part in chosen[:-1]:
                if part.size < MIN_PART_SIZE:
                    raise OssError(
                        400,
                        "EntityTooSmall",
                        "Your proposed upload is smaller than the minimum allowed size.",
                        PartNumber=part.number,
                        MinSizeAllowed=MIN_PART_SIZE,
                        ProposedSize=part.size,
                    )
            del self._uploads[up.upload_id]
        leftovers = [p for n, p in up.parts.items() if n not in set(numbers)]
        self._drop_segments([Segment(p.path, p.size) for p in leftovers])
        crc = 0
        for part in chosen:
            crc = crc64_combine(crc, part.crc64, part.size) if self.crc64 else 0
        etag = hashlib.md5(b"".join(p.md5 for p in chosen)).hexdigest().upper()
        obj = StoredObject(
            key=up.key,
            segments=[Segment(p.path, p.size) for p in chosen],
            size=sum(p.size for p in chosen),
            etag=f"{etag}-{len(chosen)}",
            crc64=crc,
            mtime=self.now(),
            content_type=up.content_type,
            object_type="Multipart",
            headers=up.headers,
        )
        self._put_object(obj)
        enc = self._encoder(req)
        x = ""
        if req.query.get("encoding-type") == "url":
            x += el("EncodingType", "url")
        x += el("Location", f"{self.endpoint}/{self.bucket}/{quote(up.key)}")
        x += el("Bucket", self.bucket) + el("Key", enc(up.key)) + el("ETag", f'"{obj.etag}"')
        headers = {
            "Content-Type": "application/xml",
            "ETag": f'"{obj.etag}"',
            "x-oss-hash-crc64ecma": str(crc),
        }
        return 200, headers, xml_doc("CompleteMultipartUploadResult", x)

    def _op_AbortMultipartUpload(
        self, req: Request, body: Body
    ) -> tuple[int, dict[str, str], bytes]:
        up = self._upload(req)
        with self._lock:
            if self._uploads.pop(up.upload_id, None) is None:
                raise no_such_upload(up.upload_id)
        self._drop_segments([Segment(p.path, p.size) for p in up.parts.values()])
        return 204, {}, b""

    def _op_ListMultipartUploads(
        self, req: Request, body: Body
    ) -> tuple[int, dict[str, str], bytes]:
        q = req.query
        prefix = q.get("prefix", "")
        key_marker, id_marker = q.get("key-marker", ""), q.get("upload-id-marker", "")
        delimiter = q.get("delimiter", "")
        max_uploads = self._list_params(req, 1000, "max-uploads")
        with self._lock:
            ups = sorted(
                (u for u in self._uploads.values() if u.key.startswith(prefix)),
                key=lambda u: (u.key, u.initiated, u.upload_id),
            )
        if key_marker:
            ups = [
                u
                for u in ups
                if u.key > key_marker
                or (id_marker and u.key == key_marker and u.upload_id > id_marker)
            ]
        page: list[Upload] = []
        prefixes: list[str] = []
        truncated = False
        for u in ups:
            if delimiter:
                idx = u.key.find(delimiter, len(prefix))
                if idx >= 0:
                    common = u.key[: idx + len(delimiter)]
                    if common not in prefixes:
                        prefixes.append(common)
                    continue
            if len(page) >= max_uploads:
                truncated = True
                break
            page.append(u)
        enc = self._encoder(req)
        x = el("Bucket", self.bucket) + el("KeyMarker", enc(key_marker))
        x += el("UploadIdMarker", id_marker)
        x += el("NextKeyMarker", enc(page[-1].key) if page else "")
        x += el("NextUploadIdMarker", page[-1].upload_id if page else "")
        x += el("Delimiter", enc(delimiter)) + el("Prefix", enc(prefix))
        x += el("MaxUploads", max_uploads) + el("IsTruncated", str(truncated).lower())
        if q.get("encoding-type") == "url":
            x += el("EncodingType", "url")
        for u in page:
            x += (
                "<Upload>"
                + el("Key", enc(u.key))
                + el("UploadId", u.upload_id)
                + el("StorageClass", "Standard")
                + el("Initiated", iso(u.initiated))
                + "</Upload>"
            )
        x += "".join(f"<CommonPrefixes>{el('Prefix', enc(p))}</CommonPrefixes>" for p in prefixes)
        return 200, {"Content-Type": "application/xml"}, xml_doc("ListMultipartUploadsResult", x)
