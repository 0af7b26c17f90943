"""Listings: ListObjects (V1 and V2) with delimiters and pages, and DeleteMultipleObjects."""

from __future__ import annotations

import base64
import binascii
import hashlib
import xml.etree.ElementTree as ET
from collections.abc import Callable
from urllib.parse import quote

from .answers import el, iso, xml_doc
from .body import Body
from .model import OssError, Request, ServerState, StoredObject


class ListingMixin(ServerState):
    """Bucket listings and batch deletes."""

    def _list_params(self, req: Request, default_max: int, name: str) -> int:
        raw = req.query.get(name) or str(default_max)
        try:
            n = int(raw)
        except ValueError:
            n = -1
        if not 0 < n <= 1000:
            raise OssError(400, "InvalidArgument", f"Argument {name} must be between 1 and 1000.")
        return n

    def _list(
        self, prefix: str, delimiter: str, after: str, max_keys: int
    ) -> tuple[list[StoredObject], list[str], bool, str]:
        """Objects and common prefixes after ``after``: (objs, prefixes, truncated, next)."""
        with self._lock:
            keys = sorted(k for k in self._objects if k.startswith(prefix) and k > after)
            objects = {k: self._objects[k] for k in keys}
        objs: list[StoredObject] = []
        prefixes: list[str] = []
        last = ""
        for key in keys:
            if delimiter:
                idx = key.find(delimiter, len(prefix))
                if idx >= 0:
                    common = key[: idx + len(delimiter)]
                    if prefixes and prefixes[-1] == common:
                        continue
                    if common <= after:
                        continue
                    if len(objs) + len(prefixes) >= max_keys:
                        return objs, prefixes, True, last
                    prefixes.append(common)
                    last = common
                    continue
            if len(objs) + len(prefixes) >= max_keys:
                return objs, prefixes, True, last
            objs.append(objects[key])
            last = key
        return objs, prefixes, False, ""

    @staticmethod
    def _contents(objs: list[StoredObject], enc: Callable[[str], str], owner: bool = True) -> str:
        out = []
        for o in objs:
            item = el("Key", enc(o.key)) + el("LastModified", iso(o.mtime))
            item += el("ETag", f'"{o.etag}"') + el("Type", o.object_type)
            item += el("Size", o.size) + el("StorageClass", "Standard")
            if owner:
                item += "<Owner>" + el("ID", "1") + el("DisplayName", "1") + "</Owner>"
            out.append(f"<Contents>{item}</Contents>")
        return "".join(out)

    @staticmethod
    def _encoder(req: Request) -> Callable[[str], str]:
        if req.query.get("encoding-type") == "url":
            return lambda s: quote(s, safe="")
        return lambda s: s

    def _op_ListObjects(self, req: Request, body: Body) -> tuple[int, dict[str, str], bytes]:
        q = req.query
        prefix, delimiter, marker = q.get("prefix", ""), q.get("delimiter", ""), q.get("marker", "")
        max_keys = self._list_params(req, 100, "max-keys")
        objs, prefixes, truncated, next_marker = self._list(prefix, delimiter, marker, max_keys)
        enc = self._encoder(req)
        x = el("Name", self.bucket) + el("Prefix", enc(prefix)) + el("Marker", enc(marker))
        x += el("MaxKeys", max_keys) + el("Delimiter", enc(delimiter))
        if q.get("encoding-type") == "url":
            x += el("EncodingType", "url")
        x += el("IsTruncated", str(truncated).lower())
        if truncated:
            x += el("NextMarker", enc(next_marker))
        x += self._contents(objs, enc)
        x += "".join(f"<CommonPrefixes>{el('Prefix', enc(p))}</CommonPrefixes>" for p in prefixes)
        return 200, {"Content-Type": "application/xml"}, xml_doc("ListBucketResult", x)

    def _op_ListObjectsV2(self, req: Request, body: Body) -> tuple[int, dict[str, str], bytes]:
        q = req.query
        prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
        token = q.get("continuation-token", "")
        after = q.get("start-after", "")
        if token:
            try:
                after = max(after, base64.urlsafe_b64decode(token.encode()).decode())
            except (binascii.Error, ValueError):
                raise OssError(400, "InvalidArgument", "Invalid continuation-token.") from None
        max_keys = self._list_params(req, 100, "max-keys")
        objs, prefixes, truncated, nxt = self._list(prefix, delimiter, after, max_keys)
        enc = self._encoder(req)
        x = el("Name", self.bucket) + el("Prefix", enc(prefix))
        if token:
            x += el("ContinuationToken", token)
        if "start-after" in q:
            x += el("StartAfter", enc(q["start-after"]))
        x += el("MaxKeys", max_keys) + el("Delimiter", enc(delimiter))
        if q.get("encoding-type") == "url":
            x += el("EncodingType", "url")
        x += el("IsTruncated", str(truncated).lower())
        x += el("KeyCount", len(objs) + len(prefixes))
        if truncated:
            x += el("NextContinuationToken", base64.urlsafe_b64encode(nxt.encode()).decode())
        x += self._contents(objs, enc, owner=q.get("fetch-owner") == "true")
        x += "".join(f"<CommonPrefixes>{el('Prefix', enc(p))}</CommonPrefixes>" for p in prefixes)
        return 200, {"Content-Type": "application/xml"}, xml_doc("ListBucketResult", x)

    def _op_DeleteMultipleObjects(
        self, req: Request, body: Body
    ) -> tuple[int, dict[str, str], bytes]:
        want_md5 = self._check_content_md5(req)
        if want_md5 is None:
            raise OssError(400, "InvalidDigest", "Missing Content-MD5 for DeleteMultipleObjects.")
        data = body.read_all()
        if hashlib.md5(data).digest() != want_md5:
            raise OssError(
                400,
                "InvalidDigest",
                "The Content-MD5 you specified did not match what we received.",
            )
        try:
            root = ET.fromstring(data)
        except ET.ParseError:
            raise OssError(
                400, "MalformedXML", "The XML you provided was not well-formed."
            ) from None
        quiet = (root.findtext("Quiet") or "false").lower() == "true"
        keys = [node.findtext("Key") or "" for node in root.findall("Object")]
        if len(keys) > 1000:
            raise OssError(400, "MalformedXML", "Too many objects to delete (at most 1000).")
        enc = self._encoder(req)
        out = ""
        for key in keys:
            with self._lock:
                obj = self._objects.pop(key, None)
            if obj is not None:
                self._drop_segments(obj.segments)
            if not quiet:
                out += f"<Deleted>{el('Key', enc(key))}</Deleted>"
        if req.query.get("encoding-type") == "url":
            out += el("EncodingType", "url")
        return 200, {"Content-Type": "application/xml"}, xml_doc("DeleteResult", out)
