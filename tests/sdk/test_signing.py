"""SDK signing: the README's worked example and the encoding rules (no server)."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from vasset_client.signing import (
    canonical_query,
    encode_query,
    percent_encode,
    sign,
    sign_params,
    string_to_sign,
)

SECRET = "s3cr3t-example"
PATH = "/video/upload/init"
PARAMS = {
    "fn": "YT5iPy5tcDQ=",
    "fsize": 1048576,
    "psize": 262144,
    "app_key": "ak_example",
    "timestamp": 1700000000,
    "random": "n0nce-0123456789AB",
}
CANONICAL = (
    "app_key=ak_example&fn=YT5iPy5tcDQ%3D&fsize=1048576&psize=262144"
    "&random=n0nce-0123456789AB&timestamp=1700000000"
)
SIGNATURE = "6e532255c7b6f52b78b37dcc9b5992591d3bd1d01f40cfba2fc4107d5a9a5893"


def test_readme_worked_example():
    assert canonical_query(PARAMS) == CANONICAL
    assert string_to_sign("POST", PATH, PARAMS) == f"POST\n{PATH}\n{CANONICAL}"
    assert sign(SECRET, "POST", PATH, PARAMS) == SIGNATURE


def test_sign_params_reproduces_the_example():
    request = {k: PARAMS[k] for k in ("fn", "fsize", "psize")}
    pairs = sign_params(
        "post",
        PATH,
        request,
        "ak_example",
        SECRET,
        timestamp=1700000000,
        nonce="n0nce-0123456789AB",
    )
    assert dict(pairs)["signature"] == SIGNATURE
    # the query as sent decodes back to the same values
    assert dict(parse_qsl(encode_query(pairs))) == {k: str(v) for k, v in dict(pairs).items()}


def test_readme_still_documents_the_example(root_dir):
    readme = (root_dir / "README.md").read_text()
    assert CANONICAL in readme and SIGNATURE in readme


def test_rfc3986_encoding():
    assert percent_encode("A-Za-z0-9_.~") == "A-Za-z0-9_.~"
    assert percent_encode("a b+c/=") == "a%20b%2Bc%2F%3D"
    assert percent_encode("视频.mp4") == "%E8%A7%86%E9%A2%91.mp4"
    assert re.fullmatch(r"(%[0-9A-F]{2})+", percent_encode("*'()!"))


def test_signature_excluded_none_dropped_sorted_by_name_then_value():
    pairs = [("b", "2"), ("a", "z"), ("a", "y"), ("signature", "x"), ("c", None)]
    assert canonical_query(pairs) == "a=y&a=z&b=2"


def test_every_signing_gets_a_fresh_nonce():
    a = dict(sign_params("GET", "/video/status", {"vid": 1}, "k", "s"))
    b = dict(sign_params("GET", "/video/status", {"vid": 1}, "k", "s"))
    assert a["random"] != b["random"] and a["signature"] != b["signature"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{16,64}", a["random"])
