"""Parsing the tus 1.0 and IETF draft headers into typed values (pure: no I/O, no state)."""

from __future__ import annotations

import base64
import binascii
import re
from email.utils import formatdate
from urllib.parse import urlsplit

from vasset import errors

#: At most 19 digits: every value fits a BIGINT and never reaches int() at absurd lengths.
_INT_RE = re.compile(r"^[0-9]{1,19}\Z")
#: Metadata keys: printable ASCII without spaces and commas (tus 1.0, Upload-Metadata).
_KEY_RE = re.compile(r"^[!-+\--~]{1,128}\Z")
_UPLOAD_ID_RE = re.compile(r"^[0-9a-f]{32}\Z")
MAX_METADATA_KEYS = 64
CHECKSUM_ALGORITHMS = ("md5", "sha1", "sha256")
#: Interop versions of the IETF draft we speak: 3 (Apple's first), 4-6 (URLSession, tus-js-client).
INTEROP_VERSIONS = (3, 4, 5, 6)


def non_negative(header: str, value: str | None, required: bool = True) -> int | None:
    """A header holding a non-negative integer, or InvalidHeader."""
    if value is None:
        if required:
            raise errors.InvalidHeader(f"{header} is required", header=header)
        return None
    value = value.strip()
    if not _INT_RE.match(value):
        raise errors.InvalidHeader(f"{header} must be a non-negative integer", header=header)
    return int(value)


def metadata(value: str | None, max_bytes: int) -> dict[str, str]:
    """Upload-Metadata (`key base64,key base64`) as a dict of UTF-8 strings."""
    if value is None or not value.strip():
        return {}
    if len(value.encode("utf-8", "surrogateescape")) > max_bytes:
        raise errors.MetadataTooLarge(
            f"Upload-Metadata is longer than {max_bytes} bytes", header="Upload-Metadata"
        )
    found: dict[str, str] = {}
    for pair in value.split(","):
        parts = pair.strip().split(" ")
        if len(parts) > 2 or not _KEY_RE.match(parts[0]):
            raise _bad_metadata(f"{pair.strip()[:40]!r} is not 'key base64'")
        key = parts[0]
        if key in found:
            raise _bad_metadata(f"the key {key!r} appears twice")
        try:
            raw = base64.b64decode(parts[1], validate=True) if len(parts) == 2 else b""
            found[key] = raw.decode("utf-8")
        except (binascii.Error, ValueError):
            raise _bad_metadata(f"the value of {key!r} is not Base64 of UTF-8 text") from None
    if len(found) > MAX_METADATA_KEYS:
        raise errors.MetadataTooLarge(
            f"Upload-Metadata has more than {MAX_METADATA_KEYS} keys", header="Upload-Metadata"
        )
    return found


def _bad_metadata(why: str) -> errors.InvalidHeader:
    return errors.InvalidHeader(f"Upload-Metadata: {why}", header="Upload-Metadata")


def checksum(value: str | None) -> tuple[str, bytes] | None:
    """Upload-Checksum (`algorithm base64-digest`) as (algorithm, digest bytes)."""
    if value is None:
        return None
    parts = value.strip().split(" ")
    if len(parts) != 2:
        raise errors.InvalidHeader(
            "Upload-Checksum must be 'algorithm base64'", header="Upload-Checksum"
        )
    algorithm = parts[0].lower()
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise errors.UnsupportedChecksum(
            f"Upload-Checksum algorithm {parts[0][:20]!r} is not one of md5, sha1, sha256"
        )
    try:
        digest = base64.b64decode(parts[1], validate=True)
    except binascii.Error:
        raise errors.InvalidHeader(
            "Upload-Checksum's digest is not Base64", header="Upload-Checksum"
        ) from None
    return algorithm, digest


def concat(value: str | None) -> tuple[str, list[str]] | None:
    """Upload-Concat: ("partial", []) or ("final", [upload ids in order])."""
    if value is None:
        return None
    value = value.strip()
    if value == "partial":
        return "partial", []
    if not value.startswith("final;"):
        raise errors.InvalidHeader(
            "Upload-Concat must be 'partial' or 'final;URL URL ...'", header="Upload-Concat"
        )
    ids = [upload_id_of(url) for url in value[len("final;") :].split()]
    if not ids:
        raise errors.InvalidHeader("Upload-Concat: final names no uploads", header="Upload-Concat")
    return "final", ids


def upload_id_of(url: str) -> str:
    """The upload id at the end of an upload URL (absolute or a path)."""
    path = urlsplit(url).path.rstrip("/")
    upload_id = path.rsplit("/", 1)[-1]
    if not _UPLOAD_ID_RE.match(upload_id):
        raise errors.InvalidHeader(
            f"{url[:80]!r} is not an upload URL of this server", header="Upload-Concat"
        )
    return upload_id


def structured_boolean(header: str, value: str | None) -> bool | None:
    """An RFC 8941 boolean (`?1` / `?0`), or None when absent."""
    if value is None:
        return None
    value = value.strip()
    if value == "?1":
        return True
    if value == "?0":
        return False
    raise errors.InvalidHeader(f"{header} must be ?1 or ?0", header=header)


def interop_version(value: str | None) -> int | None:
    """Upload-Draft-Interop-Version, or None for a tus request."""
    if value is None:
        return None
    number = non_negative("Upload-Draft-Interop-Version", value)
    if number not in INTEROP_VERSIONS:
        raise errors.InvalidHeader(
            f"Upload-Draft-Interop-Version must be one of {INTEROP_VERSIONS}",
            header="Upload-Draft-Interop-Version",
        )
    return number


def upload_complete(version: int, headers: dict[str, str]) -> bool | None:
    """Whether an IETF request says the upload ends with its body (v3 says it inverted)."""
    if version <= 3:
        incomplete = structured_boolean("Upload-Incomplete", headers.get("upload-incomplete"))
        return None if incomplete is None else not incomplete
    return structured_boolean("Upload-Complete", headers.get("upload-complete"))


def http_date(timestamp: float) -> str:
    """An RFC 7231 date, as Upload-Expires wants it."""
    return formatdate(timestamp, usegmt=True)
