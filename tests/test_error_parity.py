"""Error-code parity: vasset/errors.py, docs/API.md, the Python SDK and the JS SDK list one set.

Also the job failure codes: errors.FailureCode and their table in docs/API.md; and no code is
spelled outside vasset/errors.py (what the worker and uploads write into `error` included).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import pkgutil
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from vasset_client import errors as sdk_errors

import vasset
from vasset import errors
from vasset.transcode.probe import MediaError
from vasset.transcode.sandbox import FfmpegResult, Outcome

ROOT = Path(__file__).resolve().parent.parent
API_MD = ROOT / "docs" / "API.md"
JS_SDK = ROOT / "clients" / "js" / "vasset.js"


def _section(heading: str) -> str:
    """The text of one docs/API.md section, up to the next heading of any level."""
    text = API_MD.read_text(encoding="utf-8")
    start = text.index(f"{heading}\n")
    end = re.compile(r"^#{2,3} ", re.M).search(text, start + len(heading) + 1)
    return text[start : end.start() if end else len(text)]


def _table_rows(section: str) -> list[list[str]]:
    rows = []
    for line in section.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows[1:]  # the header row


def documented_http_codes() -> dict[str, int]:
    """code -> HTTP status, from the "Error codes" table."""
    found: dict[str, int] = {}
    for status, codes, _ in _table_rows(_section("## Error codes")):
        for code in re.findall(r"`(\w+)`", codes):
            assert code not in found, f"{code} is in the error table twice"
            found[code] = int(status)
    return found


def documented_failure_codes() -> set[str]:
    """The codes of the "Job failure codes" table."""
    rows = _table_rows(_section("### Job failure codes"))
    codes = [re.fullmatch(r"`(\w+)`", row[0]).group(1) for row in rows]  # type: ignore[union-attr]
    assert len(codes) == len(set(codes)), "a failure code is in its table twice"
    return set(codes)


def _all_subclasses(base: type) -> list[type]:
    found, pending = [], [base]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def _import_every_vasset_module() -> None:
    for info in pkgutil.walk_packages(vasset.__path__, "vasset."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)


def test_errors_py_and_the_api_table_list_the_same_codes_and_statuses():
    documented = documented_http_codes()
    defined = {code: cls.status for code, cls in errors.http_codes().items()}
    assert set(defined) - set(documented) == set(), "codes in errors.py missing from docs/API.md"
    assert set(documented) - set(defined) == set(), "codes in docs/API.md missing from errors.py"
    assert defined == documented


def test_every_class_with_a_code_lives_in_errors_py():
    _import_every_vasset_module()
    strays = [
        f"{cls.__module__}.{cls.__qualname__}"
        for cls in _all_subclasses(errors.VassetError)
        if "code" in vars(cls) and cls.__module__ != "vasset.errors"
    ]
    assert strays == [], "error codes must be defined in vasset/errors.py"


def test_categories_cannot_be_raised_and_codes_are_unique():
    categories = [c for c in _all_subclasses(errors.VassetError) if vars(c).get("category")]
    assert {c.__name__ for c in categories} >= {"BadRequest", "Conflict", "Unauthorized"}
    for cls in categories:
        assert "code" not in vars(cls), f"category {cls.__name__} must not own a code"
        with pytest.raises(TypeError):
            cls("x")
    errors.http_codes()  # raises when two classes own one code
    assert errors.InvalidParameter().code == "InvalidParameter"
    assert not hasattr(errors, "RangeNotSatisfiable"), "one name per code: InvalidRange"


def test_codes_for_framework_errors_are_documented():
    from vasset.http.responses import _LITESTAR_CODES

    documented = documented_http_codes()
    for status, code in _LITESTAR_CODES.items():
        assert documented.get(code) == status, f"Litestar's {status} answers {code}"


def test_the_python_sdk_has_one_class_per_server_code():
    documented = documented_http_codes()
    assert set(sdk_errors.SERVER_CODES) == set(documented)
    owners: dict[str, type] = {}
    for cls in _all_subclasses(sdk_errors.VassetError):
        code = vars(cls).get("default_code")
        if not code:
            continue  # a status category, or the base
        assert code not in owners, f"{cls.__name__} and {owners[code].__name__} share {code}"
        owners[code] = cls
        assert code in sdk_errors.SERVER_CODES | sdk_errors.CLIENT_CODES
    for code, status in documented.items():
        cls = sdk_errors.error_class(code, status)
        assert cls.default_code == code and cls.default_status == status, code
        assert cls.__name__ == code


def test_sdk_client_side_codes_are_apart_from_server_codes():
    documented = set(documented_http_codes())
    assert sdk_errors.CLIENT_CODES & documented == set()
    for code in sdk_errors.CLIENT_CODES:
        assert not issubclass(
            sdk_errors.error_class(code, 400), sdk_errors.VideoFailed | sdk_errors.NetworkError
        ), "a client-side code must never map a server answer"


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_js_sdk_lists_the_same_codes():
    script = (
        f"import({json.dumps(JS_SDK.resolve().as_uri())}).then(m => console.log("
        "JSON.stringify({codes: m.ERROR_CODES, client: m.CLIENT_ERROR_CODES,"
        " frozen: Object.isFrozen(m.ERROR_CODES)})))"
    )
    out = subprocess.run(
        ["node", "-e", script], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    js = json.loads(out)
    assert js["frozen"] is True
    assert len(js["codes"]) == len(set(js["codes"])), "ERROR_CODES has duplicates"
    assert set(js["codes"]) == set(documented_http_codes())
    assert set(js["client"]) & set(js["codes"]) == set()


def test_failure_codes_match_their_table_and_never_shadow_http_codes():
    assert {str(c) for c in errors.FailureCode} == documented_failure_codes()
    assert {str(c) for c in errors.FailureCode} & set(errors.http_codes()) == set()


def _ffmpeg_codes() -> set[str]:
    codes = set()
    for outcome in Outcome:
        if outcome is Outcome.OK:
            continue
        for permanent in (False, True):
            for reason in (None, "out_of_memory", "cpu_limit", "bad_input"):
                result = FfmpegResult(
                    outcome=outcome,
                    returncode=1,
                    elapsed=0.0,
                    out_time_ms=0,
                    stderr_tail="",
                    permanent=permanent,
                    reason=reason,
                )
                codes.add(result.code)
    return codes


def _code_literals(source: str) -> set[str]:
    """String constants that spell a code: the code alone, or text starting "Code:" (f-strings)."""
    # Lower-case words (a cancelled job's "superseded") are operator notes, never codes.
    codes = {str(c) for c in errors.FailureCode} | set(errors.http_codes())
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            head, colon, _ = node.value.partition(":")
            if node.value in codes or (colon and head.strip() in codes):
                found.add(node.value)
    return found


def test_the_code_finder_sees_every_way_a_code_was_spelled():
    source = (
        'video.error = "UploadExpired"\n'
        'move(row, error=f"TranscodeAbandoned: lease expired (attempt {n})")\n'
        'fail(row, "HashMismatch")\n'
        'codes = ("VideoNotFound", "InternalError: boom")\n'
        'note = "superseded"; text = "see NotAVideo"\n'
    )
    assert _code_literals(source) == {
        "UploadExpired",
        "TranscodeAbandoned: lease expired (attempt ",
        "HashMismatch",
        "VideoNotFound",
        "InternalError: boom",
    }


def test_no_code_is_spelled_outside_errors_py():
    """Failures written into `error`, route docs, examples: all name errors.py's members."""
    strays = {}
    for path in sorted((ROOT / "vasset").rglob("*.py")):
        if path != ROOT / "vasset" / "errors.py":
            for text in _code_literals(path.read_text(encoding="utf-8")):
                strays.setdefault(str(path.relative_to(ROOT)), []).append(text)
    assert strays == {}, "use errors.FailureCode members, or an error class (or its .code)"


def test_every_failure_the_worker_writes_is_a_documented_code():
    allowed = {str(c) for c in errors.FailureCode} | set(errors.http_codes())
    media = {vars(c)["code"] for c in _all_subclasses(MediaError) if "code" in vars(c)}
    media.discard("MediaError")  # the abstract base's placeholder, never raised itself
    assert media - allowed == set(), "a MediaError code is not documented"
    assert _ffmpeg_codes() - allowed == set(), "an FFmpeg outcome code is not documented"


def test_media_error_classes_name_their_code():
    for cls in _all_subclasses(MediaError):
        if "code" in vars(cls) and cls is not MediaError:
            assert inspect.getdoc(cls), cls
            assert cls.__name__ == vars(cls)["code"]
