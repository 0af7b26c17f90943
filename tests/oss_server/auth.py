"""Signatures checked as OSS does: V1 and V4 headers and presigned URLs, STS tokens, skew."""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import quote

from .answers import iso
from .model import MAX_SKEW_SECONDS, Credential, OssError, Request, ServerState

if TYPE_CHECKING:
    from .server import Handler

# The sub-resources that V1 signatures cover (OSS's list, as oss2's auth.py carries it).
SUBRESOURCES = frozenset(
    [
        "acl", "uploads", "location", "cors", "logging", "website", "referer", "lifecycle",
        "delete", "append", "tagging", "objectMeta", "uploadId", "partNumber", "security-token",
        "position", "img", "style", "styleName", "replication", "replicationProgress",
        "replicationLocation", "cname", "bucketInfo", "comp", "qos", "live", "status", "vod",
        "startTime", "endTime", "symlink", "x-oss-process", "response-content-type",
        "response-content-language", "response-expires", "response-cache-control",
        "response-content-disposition", "response-content-encoding", "udf", "udfName",
        "udfImage", "udfId", "udfImageDesc", "udfApplication", "udfApplicationLog",
        "restore", "callback", "callback-var", "policy", "stat", "encryption", "versions",
        "versioning", "versionId", "requestPayment", "x-oss-request-payer",
        "x-oss-traffic-limit", "qosInfo", "asyncFetch", "sequential", "inventory",
        "inventoryId", "continuation-token", "worm", "wormId", "wormExtend", "objectInfo",
        "group", "link", "transferAcceleration", "metaQuery", "resourceGroup",
        "x-oss-async-process", "regionList", "accessPoint", "accessPointPolicy",
    ]
)  # fmt: skip


class AuthMixin(ServerState):
    """Authenticates each request before its operation runs."""

    def _credential(self, access_key_id: str) -> Credential:
        cred = self.credentials.get(access_key_id)
        if cred is None:
            raise OssError(
                403,
                "InvalidAccessKeyId",
                "The OSS Access Key Id you provided does not exist in our records.",
                OSSAccessKeyId=access_key_id,
            )
        return cred

    def _check_token(self, cred: Credential, token: str | None) -> None:
        if cred.token is None:
            return
        if not token:
            raise OssError(
                403,
                "InvalidAccessKeyId",
                "The OSS Access Key Id you provided does not exist in our records. "
                "(an STS key needs its security token)",
            )
        if not hmac.compare_digest(token, cred.token):
            raise OssError(
                403, "InvalidSecurityToken", "The security token you provided is invalid."
            )

    def _check_skew(self, request_time: float) -> None:
        now = self.now()
        if abs(now - request_time) > MAX_SKEW_SECONDS:
            raise OssError(
                403,
                "RequestTimeTooSkewed",
                "The difference between the request time and the current time is too large.",
                RequestTime=iso(request_time),
                ServerTime=iso(now),
                MaxAllowedSkewMilliseconds=MAX_SKEW_SECONDS * 1000,
            )

    def _authenticate(self, req: Request, op: str, h: Handler) -> None:
        auth = req.headers.get("authorization", "")
        q = req.query
        if op == "PostObject":
            return  # the form carries the signature; checked while parsing it
        if auth.startswith("OSS "):
            self._auth_v1_header(req, auth)
        elif auth.startswith("OSS4-HMAC-SHA256"):
            self._auth_v4_header(req, auth)
        elif auth:
            raise OssError(
                400, "InvalidArgument", "Authorization header is invalid.", Authorization=auth
            )
        elif "Signature" in q and "OSSAccessKeyId" in q:
            self._auth_v1_url(req)
        elif q.get("x-oss-signature-version") == "OSS4-HMAC-SHA256":
            self._auth_v4_url(req)
        else:
            raise OssError(
                403,
                "AccessDenied",
                "You have no right to access this object because of bucket acl.",
            )

    def _v1_resource(self, req: Request) -> str:
        sub = sorted((k, v) for k, v in req.query_items if k in SUBRESOURCES)
        resource = f"/{req.bucket}/{req.key}"
        if sub:
            resource += "?" + "&".join(f"{k}={v}" if v else k for k, v in sub)
        return resource

    def _v1_string_to_sign(self, req: Request, date: str) -> str:
        oss_headers = sorted((k, v) for k, v in req.headers.items() if k.startswith("x-oss-"))
        canon = "".join(f"{k}:{v}\n" for k, v in oss_headers)
        return "\n".join(
            [
                req.method,
                req.headers.get("content-md5", ""),
                req.headers.get("content-type", ""),
                date,
                canon + self._v1_resource(req),
            ]
        )

    def _v1_verify(self, secret: str, string_to_sign: str, provided: str) -> None:
        digest = hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha1).digest()
        expected = base64.b64encode(digest).decode()
        if not hmac.compare_digest(expected, provided):
            raise OssError(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you "
                "provided. Check your key and signing method.",
                StringToSign=string_to_sign,
                SignatureProvided=provided,
            )

    def _request_date(self, req: Request) -> float:
        raw = req.headers.get("x-oss-date") or req.headers.get("date")
        if not raw:
            raise OssError(403, "AccessDenied", "OSS authentication requires a valid Date.")
        try:
            return email.utils.parsedate_to_datetime(raw).timestamp()
        except (TypeError, ValueError):
            raise OssError(
                403, "AccessDenied", "OSS authentication requires a valid Date."
            ) from None

    def _auth_v1_header(self, req: Request, auth: str) -> None:
        access_key_id, sep, provided = auth[4:].strip().rpartition(":")
        if not sep:
            raise OssError(400, "InvalidArgument", "Authorization header is invalid.")
        cred = self._credential(access_key_id)
        self._check_skew(self._request_date(req))
        self._check_token(cred, req.headers.get("x-oss-security-token"))
        date = req.headers.get("x-oss-date") or req.headers.get("date", "")
        self._v1_verify(cred.secret, self._v1_string_to_sign(req, date), provided)

    def _auth_v1_url(self, req: Request) -> None:
        q = req.query
        cred = self._credential(q["OSSAccessKeyId"])
        try:
            expires = int(q.get("Expires", ""))
        except ValueError:
            raise OssError(403, "AccessDenied", "Invalid Expires.") from None
        self._v1_verify(cred.secret, self._v1_string_to_sign(req, str(expires)), q["Signature"])
        self._check_token(cred, q.get("security-token"))
        if expires < self.now():
            raise OssError(
                403,
                "AccessDenied",
                "Request has expired.",
                Expires=iso(expires),
                ServerTime=iso(self.now()),
            )

    @staticmethod
    def _v4_encode(text: str, keep_slash: bool) -> str:
        return quote(text.encode(), safe="-_.~" + ("/" if keep_slash else ""))

    def _v4_signature(
        self,
        req: Request,
        secret: str,
        scope: str,
        date_time: str,
        additional: list[str],
        skip_params: frozenset[str] = frozenset(),
    ) -> tuple[str, str]:
        _, region, product = scope.split("/")[:3]
        params = sorted(
            (self._v4_encode(k, False), self._v4_encode(v, False))
            for k, v in req.query_items
            if k not in skip_params
        )
        canon_query = "&".join(f"{k}={v}" if v else k for k, v in params)
        signed = {"content-type", "content-md5", *additional}
        headers = sorted(
            (k, v) for k, v in req.headers.items() if k.startswith("x-oss-") or k in signed
        )
        canon_headers = "".join(f"{k}:{v}\n" for k, v in headers)
        canonical = "\n".join(
            [
                req.method,
                self._v4_encode(f"/{req.bucket}/{req.key}", True),
                canon_query,
                canon_headers,
                ";".join(sorted(additional)),
                req.headers.get("x-oss-content-sha256", "UNSIGNED-PAYLOAD"),
            ]
        )
        string_to_sign = "\n".join(
            [
                "OSS4-HMAC-SHA256",
                date_time,
                scope,
                hashlib.sha256(canonical.encode()).hexdigest(),
            ]
        )
        key = ("aliyun_v4" + secret).encode()
        for part in (date_time[:8], region, product, "aliyun_v4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest(), string_to_sign

    def _v4_scope(self, credential: str, date_time: str) -> tuple[str, str]:
        access_key_id, _, scope = credential.partition("/")
        parts = scope.split("/")
        if len(parts) != 4 or parts[3] != "aliyun_v4_request" or parts[2] != "oss":
            raise OssError(400, "InvalidArgument", "Invalid credential in Authorization header.")
        if parts[0] != date_time[:8]:
            raise OssError(400, "InvalidArgument", "Invalid signing date in Authorization header.")
        if parts[1] != self.region:
            raise OssError(
                400, "InvalidArgument", "Invalid signing region in Authorization header."
            )
        return access_key_id, scope

    @staticmethod
    def _v4_time(date_time: str) -> float:
        try:
            return datetime.strptime(date_time, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
        except ValueError:
            raise OssError(403, "AccessDenied", "Invalid x-oss-date.") from None

    def _v4_check(self, expected: str, provided: str, string_to_sign: str) -> None:
        if not hmac.compare_digest(expected, provided):
            raise OssError(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you "
                "provided. Check your key and signing method.",
                StringToSign=string_to_sign,
                SignatureProvided=provided,
            )

    def _auth_v4_header(self, req: Request, auth: str) -> None:
        fields: dict[str, str] = {}
        for item in auth[len("OSS4-HMAC-SHA256") :].split(","):
            name, _, value = item.strip().partition("=")
            fields[name] = value
        date_time = req.headers.get("x-oss-date", "")
        if "Credential" not in fields or "Signature" not in fields or not date_time:
            raise OssError(400, "InvalidArgument", "Authorization header is invalid.")
        access_key_id, scope = self._v4_scope(fields["Credential"], date_time)
        cred = self._credential(access_key_id)
        self._check_skew(self._v4_time(date_time))
        self._check_token(cred, req.headers.get("x-oss-security-token"))
        additional = [h for h in fields.get("AdditionalHeaders", "").lower().split(";") if h]
        expected, sts = self._v4_signature(req, cred.secret, scope, date_time, additional)
        self._v4_check(expected, fields["Signature"], sts)

    def _auth_v4_url(self, req: Request) -> None:
        q = req.query
        date_time = q.get("x-oss-date", "")
        access_key_id, scope = self._v4_scope(q.get("x-oss-credential", ""), date_time)
        cred = self._credential(access_key_id)
        additional = [h for h in q.get("x-oss-additional-headers", "").lower().split(";") if h]
        expected, sts = self._v4_signature(
            req, cred.secret, scope, date_time, additional, frozenset(["x-oss-signature"])
        )
        self._v4_check(expected, q.get("x-oss-signature", ""), sts)
        self._check_token(cred, q.get("x-oss-security-token"))
        try:
            expires = self._v4_time(date_time) + int(q.get("x-oss-expires", ""))
        except ValueError:
            raise OssError(403, "AccessDenied", "Invalid x-oss-expires.") from None
        if expires < self.now():
            raise OssError(
                403,
                "AccessDenied",
                "Request has expired.",
                Expires=iso(expires),
                ServerTime=iso(self.now()),
            )
