"""vasset-cli: commands in-process, and an upload killed with SIGKILL then resumed."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from vasset_client.cli import main

from tests.sdk.conftest import make_client, random_file

KIB = 1024


def cli_command() -> list[str]:
    """The installed vasset-cli script (or the module when the script is not on disk)."""
    script = Path(sys.executable).parent / "vasset-cli"
    return [str(script)] if script.exists() else [sys.executable, "-m", "vasset_client"]


def creds_args(url: str, creds: dict) -> list[str]:
    # name=value: a secret may start with "-", which argparse would take for an option
    return [f"--url={url}", f"--app-key={creds['app_key']}", f"--app-secret={creds['app_secret']}"]


def run_main(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture
def env_creds(server, app_creds, monkeypatch):
    """Credentials through VASSET_* environment variables."""
    monkeypatch.setenv("VASSET_URL", server.url)
    monkeypatch.setenv("VASSET_APP_KEY", app_creds["app_key"])
    monkeypatch.setenv("VASSET_APP_SECRET", app_creds["app_secret"])


def test_cli_commands(env_creds, capsys, tmp_path, state_dir):
    f = random_file(tmp_path / "cli.mp4", 350 * KIB)
    md5 = hashlib.md5(f.read_bytes()).hexdigest()
    rc, out, err = run_main(
        capsys, "upload", str(f), "--part-size", "100K", "--parallel", "3",
        "--state-dir", str(state_dir), "--priority", "2",
    )  # fmt: skip
    assert rc == 0, err
    result = json.loads(out)
    vid = result["vid"]
    assert result["md5"] == md5 and result["size"] == f.stat().st_size
    assert "100.0%" in err and f"vid {vid}" in err

    rc, out, _ = run_main(capsys, "status", str(vid))
    assert rc == 0 and json.loads(out)["status"] == "uploaded"
    rc, out, _ = run_main(capsys, "wait", str(vid), "--until", "uploaded", "--timeout", "5")
    assert rc == 0 and json.loads(out)["vid"] == vid
    rc, out, _ = run_main(capsys, "mediainfo", str(vid))
    assert rc == 0 and json.loads(out)["md5"] == md5
    rc, out, _ = run_main(capsys, "limits")
    assert rc == 0 and json.loads(out)["max_part_count"] == 10_000
    rc, out, _ = run_main(capsys, "list", "--status", "uploaded", "--limit", "1")
    assert rc == 0 and json.loads(out)["videos"][0]["vid"] == vid  # newest first
    rc, out, _ = run_main(capsys, "list", "--all", "--limit", "2")
    listed = json.loads(out)
    assert rc == 0 and listed["next_cursor"] is None and vid in {v["vid"] for v in listed["videos"]}
    assert [v["vid"] for v in listed["videos"]] == sorted(
        (v["vid"] for v in listed["videos"]), reverse=True
    )

    rc, out, err = run_main(capsys, "playurl", str(vid), "--format", "mp4")
    assert rc == 1 and out == ""
    error = json.loads(err.splitlines()[-1])["error"]
    assert error["code"] in ("VideoNotPlayable", "NotFound") and error["request_id"]

    rc, out, err = run_main(capsys, "snapshot", str(vid))
    assert rc in (0, 1)
    if rc == 0:
        assert json.loads(out)["vid"] == vid
    else:
        assert json.loads(err.splitlines()[-1])["error"]["status"] in (404, 409)

    rc, out, _ = run_main(capsys, "delete", str(vid))
    assert rc == 0 and json.loads(out) == {"vid": vid, "deleted": True}
    rc, _, err = run_main(capsys, "status", str(vid))
    assert rc == 1 and json.loads(err.splitlines()[-1])["error"]["code"] == "VideoNotFound"


def test_cli_flags_override_env_and_missing_credentials(server, app_creds, capsys, monkeypatch):
    monkeypatch.setenv("VASSET_URL", server.url)
    monkeypatch.setenv("VASSET_APP_KEY", app_creds["app_key"])
    monkeypatch.setenv("VASSET_APP_SECRET", "wrong")
    rc, _, err = run_main(capsys, "limits")
    assert rc == 1 and "SignatureDoesNotMatch" in err
    rc, out, _ = run_main(capsys, "limits", f"--app-secret={app_creds['app_secret']}")
    assert rc == 0 and json.loads(out)["min_part_size"] == 100 * KIB
    monkeypatch.delenv("VASSET_APP_SECRET")
    with pytest.raises(SystemExit, match="app-secret"):
        main(["limits"])


def test_cli_upload_killed_then_resumed(server, app_creds, proxy, tmp_path, state_dir):
    f = random_file(tmp_path / "killed.mp4", 2 * 1024 * KIB)  # 21 parts of 100 KiB
    md5 = hashlib.md5(f.read_bytes()).hexdigest()
    upload = ["upload", str(f), "--part-size", "100K", "--state-dir", str(state_dir)]
    slow = [*upload, "--parallel", "2", "--limit-rate", "400K", "--no-progress"]
    proc = subprocess.Popen(
        [*cli_command(), *creds_args(server.url, app_creds), *slow],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    with make_client(server.url, app_creds) as c:
        upid = None
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                states = list(state_dir.glob("upload-*.json"))
                if states and upid is None:
                    upid = json.loads(states[0].read_text())["upload_id"]
                if upid and (c.resume(upid).received or 0) >= 4:
                    break
                time.sleep(0.05)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
        assert proc.returncode == -signal.SIGKILL and upid
        time.sleep(0.3)  # let the server finish with the connections that died
        before = c.resume(upid)
    assert before.status == "uploading" and 0 < len(before.missing) <= 17
    assert len(list(state_dir.iterdir())) == 1

    # run the same command again, through a recording proxy and without the rate limit
    out = subprocess.run(
        [*cli_command(), *creds_args(proxy.url, app_creds), *upload],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["md5"] == md5 and result["resumed"] is True and result["upload_id"] == upid
    [resume] = [r for r in proxy.records if r.path == "/video/upload/resume"]
    sent = sorted(int(r.params["pseq"]) for r in proxy.puts())
    assert sent == resume.answer["missing"]  # only the missing parts, each once
    assert set(sent) <= set(before.missing) and result["parts_sent"] == len(sent)
    assert "/video/upload/init" not in [r.path for r in proxy.records]
    assert "100.0%" in out.stderr and f"vid {result['vid']}" in out.stderr
    with make_client(server.url, app_creds) as c:
        assert c.mediainfo(result["vid"]).md5 == md5
    assert list(state_dir.iterdir()) == []
