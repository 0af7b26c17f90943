"""The browser/Node SDK (clients/js): its own `node --test` suite against the real server."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from tests.support.server import ROOT

JS_DIR = ROOT / "clients" / "js"
NODE = shutil.which("node")


def _node_major() -> int:
    out = subprocess.run([NODE, "--version"], capture_output=True, text=True, check=True).stdout
    return int(out.strip().lstrip("v").split(".")[0])


pytestmark = pytest.mark.skipif(
    NODE is None or _node_major() < 20, reason="Node.js 20 or newer is not installed"
)


def test_js_sdk_suite(server, app_creds):
    """Upload via token, parallel parts, resume after a reload, retries, progress."""
    tests = sorted(str(p.relative_to(JS_DIR)) for p in (JS_DIR / "test").glob("*.test.js"))
    assert tests, "no JS tests found"
    env = {
        **os.environ,
        "VASSET_URL": server.url,
        "VASSET_APP_KEY": app_creds["app_key"],
        "VASSET_APP_SECRET": app_creds["app_secret"],
        "NODE_OPTIONS": "",
    }
    proc = subprocess.run(
        [NODE, "--test", "--test-reporter=tap", *tests],
        cwd=JS_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-8000:]
    passed = re.search(r"^# pass (\d+)$", output, re.M)
    failed = re.search(r"^# fail (\d+)$", output, re.M)
    skipped = re.search(r"^# skipped (\d+)$", output, re.M)
    assert passed and int(passed.group(1)) >= 10, output[-4000:]
    assert failed and failed.group(1) == "0", output[-4000:]
    # Every server test ran: the environment reached node.
    assert skipped and skipped.group(1) == "0", output[-4000:]
