"""Browser PostObject: the multipart form, its V1 policy signature and every policy condition."""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from .answers import el, xml_doc
from .body import Body, parse_form
from .model import STORED_HEADERS, OssError, Request, Segment, ServerState, StoredObject


class PostObjectMixin(ServerState):
    """PostObject: a form upload authorized by a signed policy."""

    def _op_PostObject(self, req: Request, body: Body) -> tuple[int, dict[str, str], bytes]:
        ctype = req.headers.get("content-type", "")
        boundary = ""
        for piece in ctype.split(";")[1:]:
            name, _, value = piece.strip().partition("=")
            if name.lower() == "boundary":
                boundary = value.strip('"')
        if not boundary:
            raise OssError(
                400,
                "MalformedPOSTRequest",
                "The body of your POST request is not well-formed multipart/form-data.",
            )
        form, file_name, file_ctype, path, size, md5, crc = parse_form(
            body, boundary.encode(), self._new_blob_path()
        )
        try:
            return self._post_object(req, form, file_name, file_ctype, path, size, md5, crc)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise

    def _post_object(
        self,
        req: Request,
        form: dict[str, str],
        file_name: str,
        file_ctype: str,
        path: str,
        size: int,
        md5: bytes,
        crc: int,
    ) -> tuple[int, dict[str, str], bytes]:
        key = form.get("key", "").replace("${filename}", file_name)
        if "key" not in form:
            raise OssError(400, "InvalidArgument", "The key form field is required.")
        access_key_id = form.get("ossaccesskeyid")
        if access_key_id is None:
            raise OssError(
                403,
                "AccessDenied",
                "You have no right to access this object because of bucket acl.",
            )
        cred = self._credential(access_key_id)
        policy_b64 = form.get("policy", "")
        if not policy_b64:
            raise OssError(400, "InvalidArgument", "Missing policy form field.")
        signature = form.get("signature", "")
        self._check_token(cred, form.get("x-oss-security-token"))
        digest = hmac.new(cred.secret.encode(), policy_b64.encode(), hashlib.sha1).digest()
        expected = base64.b64encode(digest).decode()
        if not hmac.compare_digest(expected, signature):
            raise OssError(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you "
                "provided. Check your key and signing method.",
                StringToSign=policy_b64,
                SignatureProvided=signature,
            )
        fields = dict(form)
        fields["key"] = key
        fields["bucket"] = self.bucket
        fields.setdefault("content-type", file_ctype)
        self._check_policy(policy_b64, fields, size)
        self._check_key(key)
        obj = StoredObject(
            key=key,
            segments=[Segment(path, size)],
            size=size,
            etag=md5.hex().upper(),
            crc64=crc,
            mtime=self.now(),
            content_type=fields.get("content-type") or "application/octet-stream",
            content_md5=base64.b64encode(md5).decode(),
            headers={
                k: v for k, v in form.items() if k.startswith("x-oss-meta-") or k in STORED_HEADERS
            },
        )
        self._put_object(obj)
        headers = {"ETag": f'"{obj.etag}"', "x-oss-hash-crc64ecma": str(crc)}
        status = form.get("success_action_status", "204")
        if status == "201":
            location = f"{self.endpoint}/{self.bucket}/{quote(key)}"
            x = el("Location", location) + el("Bucket", self.bucket)
            x += el("Key", key) + el("ETag", f'"{obj.etag}"')
            headers["Content-Type"] = "application/xml"
            return 201, headers, xml_doc("PostResponse", x)
        return (200 if status == "200" else 204), headers, b""

    def _check_policy(self, policy_b64: str, fields: dict[str, str], size: int) -> None:
        def invalid(message: str) -> OssError:
            return OssError(400, "InvalidPolicyDocument", f"Invalid Policy: {message}")

        try:
            policy = json.loads(base64.b64decode(policy_b64, validate=True))
        except (binascii.Error, ValueError):
            raise invalid("Invalid JSON.") from None
        if not isinstance(policy, dict):
            raise invalid("Invalid JSON.")
        unknown = set(policy) - {"expiration", "conditions"}
        if unknown:
            raise invalid(f"Unexpected field {sorted(unknown)[0]}.")
        if "expiration" not in policy:
            raise invalid("Policy missing expiration.")
        if "conditions" not in policy or not isinstance(policy["conditions"], list):
            raise invalid("Policy missing conditions.")
        expiration = policy["expiration"]
        if not isinstance(expiration, str):
            raise invalid("Invalid expiration.")
        try:
            exp = datetime.strptime(expiration.replace(".000Z", "Z"), "%Y-%m-%dT%H:%M:%SZ")
        except ValueError:
            raise invalid("Invalid expiration.") from None
        if exp.replace(tzinfo=UTC).timestamp() < self.now():
            raise OssError(403, "AccessDenied", "Invalid according to Policy: Policy expired.")

        def failed(cond: Any) -> OssError:
            return OssError(
                403,
                "AccessDenied",
                f"Invalid according to Policy: Policy Condition failed: {json.dumps(cond)}",
            )

        length_range: tuple[int, int] | None = None
        for cond in policy["conditions"]:
            if isinstance(cond, dict):
                if len(cond) != 1:
                    raise invalid(
                        "Invalid Simple-Condition: Simple-Conditions must have exactly one "
                        "property specified."
                    )
                ((name, value),) = cond.items()
                if fields.get(name.lower()) != value:
                    raise failed(cond)
                continue
            if not isinstance(cond, list) or not cond or not isinstance(cond[0], str):
                raise invalid("Invalid condition.")
            kind = cond[0].lower()
            if kind == "content-length-range":
                if (
                    len(cond) != 3
                    or not all(isinstance(v, int) and not isinstance(v, bool) for v in cond[1:])
                    or cond[1] < 0
                    or cond[2] < cond[1]
                ):
                    raise invalid("Invalid content-length-range.")
                length_range = (cond[1], cond[2])
                continue
            if len(cond) != 3 or not isinstance(cond[1], str) or not cond[1].startswith("$"):
                raise invalid(f"Invalid condition: {json.dumps(cond)}")
            actual = fields.get(cond[1][1:].lower(), "")
            expected = cond[2]
            if kind == "eq":
                ok = isinstance(expected, str) and actual == expected
            elif kind == "starts-with":
                ok = isinstance(expected, str) and actual.startswith(expected)
            elif kind in ("in", "not-in"):
                if not isinstance(expected, list):
                    raise invalid(f"Invalid condition: {json.dumps(cond)}")
                ok = (actual in expected) == (kind == "in")
            else:
                raise invalid(f"Unknown condition: {cond[0]}")
            if not ok:
                raise failed(cond)
        if length_range is not None:
            if size > length_range[1]:
                raise OssError(
                    400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size."
                )
            if size < length_range[0]:
                raise OssError(
                    400,
                    "EntityTooSmall",
                    "Your proposed upload is smaller than the minimum allowed size.",
                )
