"""The signing algorithm, including the README's worked example."""

from __future__ import annotations

import re

from vasset.auth.signing import canonical_query, parse_query, percent_encode, sign, string_to_sign

EXAMPLE_PAIRS = [
    ("fn", "YT5iPy5tcDQ="),
    ("fsize", "1048576"),
    ("psize", "262144"),
    ("app_key", "ak_example"),
    ("timestamp", "1700000000"),
    ("random", "n0nce-0123456789AB"),
]
EXAMPLE_CANONICAL = (
    "app_key=ak_example&fn=YT5iPy5tcDQ%3D&fsize=1048576&psize=262144"
    "&random=n0nce-0123456789AB&timestamp=1700000000"
)
EXAMPLE_SIGNATURE = "6e532255c7b6f52b78b37dcc9b5992591d3bd1d01f40cfba2fc4107d5a9a5893"


def test_worked_example_matches():
    assert canonical_query(EXAMPLE_PAIRS) == EXAMPLE_CANONICAL
    assert string_to_sign("POST", "/video/upload/init", EXAMPLE_PAIRS) == (
        "POST\n/video/upload/init\n" + EXAMPLE_CANONICAL
    )
    assert sign("s3cr3t-example", "POST", "/video/upload/init", EXAMPLE_PAIRS) == EXAMPLE_SIGNATURE


def test_readme_documents_the_same_example(root_dir):
    readme = (root_dir / "README.md").read_text()
    assert EXAMPLE_CANONICAL in readme
    assert EXAMPLE_SIGNATURE in readme
    assert "s3cr3t-example" in readme


def test_percent_encoding_rules():
    assert percent_encode("A-Za-z0-9_.~") == "A-Za-z0-9_.~"
    assert percent_encode("a b") == "a%20b"
    assert percent_encode("+/=") == "%2B%2F%3D"
    assert percent_encode("视") == "%E8%A7%86"
    assert re.fullmatch(r"(%[0-9A-F]{2})+", percent_encode("*'()!"))


def test_signature_excluded_and_sorted_by_name_then_value():
    pairs = [("b", "2"), ("a", "z"), ("a", "y"), ("signature", "x")]
    assert canonical_query(pairs) == "a=y&a=z&b=2"


def test_parse_query_decodes_and_keeps_blanks():
    assert parse_query("a=%2B1&b=&c=x+y") == [("a", "+1"), ("b", ""), ("c", "x y")]
