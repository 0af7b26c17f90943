"""Import security: oss:// imports never read another app's objects (item 4), and http(s)
imports connect only to the address that was checked, on every hop (item 5).

The oss:// tests run a real `vasset serve` and `vasset worker` against the OSS test server with
only VASSET_STORAGE_URL=oss://BUCKET set (no VASSET_OSS_BUCKET). The http(s) tests call the
importer in-process with real sockets: an injected resolver answers a public address first and
127.0.0.1 afterwards, and the test's transport records every connection attempt, carries a
routed public address to a local server playing that host, and never sends traffic off the
machine.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import secrets
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import httpx
import oss2
import pytest

from tests import media
from tests.oss_server import OssServer
from tests.oss_server.pytest_plugin import OSS_ACCESS_KEY_ID, OSS_ACCESS_KEY_SECRET, OSS_BUCKET
from tests.support.api import Api
from tests.support.db import sql
from tests.support.workers import Stack
from vasset.transcode import importer

# ---- item 5: http(s) imports are pinned to the checked address


class Site:
    """A tiny HTTP server on 127.0.0.1 that records (path, Host) of every request."""

    def __init__(
        self,
        routes: dict[str, tuple[int, dict[str, str], bytes]],
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.routes = routes
        self.hits: list[tuple[str, str | None]] = []
        self.server_names: list[str | None] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.hits.append((self.path, self.headers.get("Host")))
                status, headers, body = site.routes.get(self.path, (404, {}, b"no"))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            tls.sni_callback = lambda _sock, name, _ctx: self.server_names.append(name)
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Rebinding:
    """A resolver whose n-th answer for a name is answers[name][n] (the last one repeats)."""

    def __init__(self, **answers: list[list[str]]) -> None:
        self.answers = {name.replace("_", "."): seq for name, seq in answers.items()}
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        seq = self.answers[host]
        n = sum(1 for h in self.calls if h == host)
        self.calls.append(host)
        return seq[min(n, len(seq) - 1)]


class Network(httpx.AsyncHTTPTransport):
    """The test's network: records each connection attempt; nothing leaves the machine.

    A routed public address is carried to the local server playing that host; a loopback
    address is connected for real (that is what an SSRF reaches); anything else is refused.
    A request naming a host instead of an address is resolved here with the test's resolver,
    as the system would do if the importer let it.
    """

    def __init__(
        self,
        resolver: Rebinding,
        routes: dict[str, int] | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        super().__init__(retries=0, trust_env=False, verify=verify)
        self.resolver = resolver
        self.routes = routes or {}
        self.connects: list[tuple[str, int]] = []
        self.seen: list[tuple[str, int, str | None, str | None]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        port = request.url.port or (443 if request.url.scheme == "https" else 80)
        try:
            ip = str(ipaddress.ip_address(host))
        except ValueError:
            ip = (await self.resolver(host, port))[0]
        self.connects.append((ip, port))
        sni = request.extensions.get("sni_hostname")
        self.seen.append((ip, port, request.headers.get("host"), sni))
        if ip in self.routes:
            request.url = request.url.copy_with(host="127.0.0.1", port=self.routes[ip])
        elif ipaddress.ip_address(ip).is_loopback:
            request.url = request.url.copy_with(host=ip)
        else:
            raise httpx.ConnectError(f"test network: no route to {ip}", request=request)
        return await super().handle_async_request(request)


@pytest.fixture
def internal() -> Iterator[Site]:
    """A service on loopback that an import must never reach."""
    site = Site({"/secret": (200, {}, b"internal secret")})
    yield site
    site.close()


async def fetch(src: str, tmp_path: Path, resolver, network, allow: set[str]) -> str:
    return await importer.fetch_http(
        src, tmp_path / "import", allow, 10 << 20, 20, resolver=resolver, transport=network
    )


async def test_rebinding_name_is_fetched_only_from_the_checked_address(tmp_path, internal):
    resolver = Rebinding(rebind_test=[["1.2.3.4"], ["127.0.0.1"]])
    network = Network(resolver)
    with pytest.raises(httpx.ConnectError):
        await fetch(
            f"http://rebind.test:{internal.port}/secret",
            tmp_path,
            resolver,
            network,
            {"rebind.test"},
        )
    # the one connection went to the address that was checked, never to loopback
    assert network.connects == [("1.2.3.4", internal.port)]
    assert resolver.calls == ["rebind.test"]
    assert internal.hits == []


async def test_loopback_answer_is_refused_before_connecting(tmp_path, internal):
    resolver = Rebinding(local_test=[["127.0.0.1"]])
    network = Network(resolver)
    with pytest.raises(importer.ImportRefused) as caught:
        await fetch(
            f"http://local.test:{internal.port}/secret", tmp_path, resolver, network, {"local.test"}
        )
    assert caught.value.code == "InvalidSource" and caught.value.status == 400
    assert network.connects == [] and internal.hits == []


@pytest.mark.parametrize(
    "answer",
    [
        ["10.0.0.1"],
        ["169.254.169.254"],
        ["100.64.0.1"],  # shared (carrier-grade NAT) space: not private, not public either
        ["0.0.0.0"],
        ["224.0.0.1"],
        ["::1"],
        ["fe80::1"],
        ["fc00::1"],
        ["::ffff:127.0.0.1"],
        ["64:ff9b::7f00:1"],  # NAT64 of 127.0.0.1
        ["2002:7f00:1::1"],  # 6to4 of 127.0.0.1
        ["1.2.3.4", "127.0.0.1"],  # one bad answer among good ones
    ],
)
async def test_non_public_answers_are_refused(tmp_path, answer):
    resolver = Rebinding(evil_test=[answer])
    network = Network(resolver)
    with pytest.raises(importer.ImportRefused):
        await fetch("http://evil.test/clip.mp4", tmp_path, resolver, network, {"evil.test"})
    assert network.connects == []


async def test_address_literal_is_checked_without_resolving(tmp_path, internal):
    resolver = Rebinding()
    network = Network(resolver)
    with pytest.raises(importer.ImportRefused):
        await fetch(
            f"http://127.0.0.1:{internal.port}/secret", tmp_path, resolver, network, {"127.0.0.1"}
        )
    assert resolver.calls == [] and network.connects == [] and internal.hits == []


async def test_every_redirect_hop_is_pinned_and_keeps_its_host(tmp_path, internal, clips):
    body = media.landscape(clips).read_bytes()
    public = Site(
        {
            "/start": (302, {"Location": "http://cdn.test/clip.mp4"}, b""),
            "/clip.mp4": (200, {"Content-Type": "video/mp4"}, body),
        }
    )
    try:
        resolver = Rebinding(
            media_test=[["1.2.3.4"], ["127.0.0.1"]], cdn_test=[["5.6.7.8"], ["127.0.0.1"]]
        )
        network = Network(resolver, routes={"1.2.3.4": public.port, "5.6.7.8": public.port})
        md5 = await fetch(
            "http://media.test/start", tmp_path, resolver, network, {"media.test", "cdn.test"}
        )
    finally:
        public.close()
    assert md5 == hashlib.md5(body).hexdigest()
    assert (tmp_path / "import").read_bytes() == body
    assert network.connects == [("1.2.3.4", 80), ("5.6.7.8", 80)]
    assert public.hits == [("/start", "media.test"), ("/clip.mp4", "cdn.test")]
    assert resolver.calls == ["media.test", "cdn.test"]
    assert internal.hits == []


async def test_redirect_to_loopback_is_refused(tmp_path, internal):
    public = Site({"/start": (302, {"Location": f"http://127.0.0.1:{internal.port}/secret"}, b"")})
    try:
        resolver = Rebinding(media_test=[["1.2.3.4"]])
        network = Network(resolver, routes={"1.2.3.4": public.port})
        with pytest.raises(importer.ImportRefused):
            await fetch(
                "http://media.test/start", tmp_path, resolver, network, {"media.test", "127.0.0.1"}
            )
    finally:
        public.close()
    assert network.connects == [("1.2.3.4", 80)]
    assert internal.hits == []


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate (and key) for secure.test, made with the openssl CLI."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"]
    name = ["-subj", "/CN=secure.test", "-addext", "subjectAltName=DNS:secure.test"]
    out = ["-keyout", str(key), "-out", str(cert)]
    subprocess.run(["openssl", "req", "-x509", *ec, *name, *out], check=True, capture_output=True)
    return cert, key


@pytest.fixture
def tls_site(certificate) -> Iterator[Site]:
    """An https server on loopback with secure.test's certificate, recording the SNI it gets."""
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(*certificate)
    site = Site({"/clip.mp4": (200, {}, b"tls body")}, tls=server_ctx)
    yield site
    site.close()


async def test_https_goes_to_the_address_but_verifies_and_names_the_host(
    tmp_path, certificate, tls_site
):
    resolver = Rebinding(secure_test=[["1.2.3.4"], ["127.0.0.1"]])
    trust = ssl.create_default_context(cafile=str(certificate[0]))
    network = Network(resolver, routes={"1.2.3.4": tls_site.port}, verify=trust)
    md5 = await fetch("https://secure.test/clip.mp4", tmp_path, resolver, network, {"secure.test"})
    assert md5 == hashlib.md5(b"tls body").hexdigest()
    # the TCP connection went to the pinned address; TLS named (SNI) and verified the host
    assert network.seen == [("1.2.3.4", 443, "secure.test", "secure.test")]
    assert tls_site.server_names == ["secure.test"]
    assert tls_site.hits == [("/clip.mp4", "secure.test")]


async def test_https_certificate_is_checked_against_the_name_not_the_address(
    tmp_path, certificate, tls_site
):
    resolver = Rebinding(other_test=[["1.2.3.4"]])
    trust = ssl.create_default_context(cafile=str(certificate[0]))
    network = Network(resolver, routes={"1.2.3.4": tls_site.port}, verify=trust)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        await fetch("https://other.test/clip.mp4", tmp_path, resolver, network, {"other.test"})
    assert tls_site.server_names == ["other.test"] and tls_site.hits == []


# ---- item 4: oss:// imports never read another app's objects

LADDER = "240p"


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    return media.shared_dir(tmp_path_factory)


@pytest.fixture(scope="module")
def oss(tmp_path_factory) -> Iterator[OssServer]:
    server = OssServer(
        OSS_ACCESS_KEY_ID,
        OSS_ACCESS_KEY_SECRET,
        OSS_BUCKET,
        data_dir=tmp_path_factory.mktemp("oss-import"),
    )
    server.start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def bucket(oss) -> oss2.Bucket:
    return oss2.Bucket(
        oss2.Auth(OSS_ACCESS_KEY_ID, OSS_ACCESS_KEY_SECRET), oss.endpoint, OSS_BUCKET
    )


@pytest.fixture(scope="module")
def stack(test_env, tmp_path_factory, oss) -> Iterator[Stack]:
    # Only the storage URL names the bucket: VASSET_OSS_BUCKET stays unset.
    stack = Stack(
        test_env,
        tmp_path_factory.mktemp("import"),
        "imp",
        VASSET_STORAGE_URL=f"oss://{OSS_BUCKET}",
        VASSET_OSS_ENDPOINT=oss.endpoint,
        VASSET_OSS_ACCESS_KEY_ID=OSS_ACCESS_KEY_ID,
        VASSET_OSS_ACCESS_KEY_SECRET=OSS_ACCESS_KEY_SECRET,
        VASSET_LADDER=LADDER,
        VASSET_IMAGE_COUNT="1",
        VASSET_HLS="false",
        VASSET_IMPORT_ALLOW_HOSTS="127.0.0.1,::1",
    )
    assert "VASSET_OSS_BUCKET" not in stack.env
    stack.start()
    with stack.fleet("fleet") as fleet:
        fleet.start(1)
        yield stack
    stack.stop()


@pytest.fixture(scope="module")
def app_a(stack) -> Api:
    return stack.api()


@pytest.fixture(scope="module")
def app_b(stack) -> Api:
    creds = json.loads(stack.cli("apps", "create", "other", "--json"))
    return Api(stack.server.url, creds["app_key"], creds["app_secret"])


def wait_playable(api: Api, vid: int, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = api.call("GET", "/video/status", {"vid": vid}).json()
        if status["status"] in ("playable", "transcode_failed", "upload_failed"):
            assert status["status"] == "playable", status
            return status
        time.sleep(0.2)
    raise AssertionError(f"video {vid} not playable after {timeout}s: {status}")


def import_src(api: Api, src: str) -> httpx.Response:
    return api.call("POST", "/video/transcode", {"src": src})


@pytest.fixture(scope="module")
def a_video(stack, app_a, clips) -> dict:
    """App A's playable video: its vid, app id, source key and a rendition key from playurl."""
    data = media.landscape(clips).read_bytes()
    done = app_a.upload("a.mp4", data, max(len(data), 100 * 1024), auto=1, with_hash=False)
    vid = done["vid"]
    wait_playable(app_a, vid)
    ((app_id, source),) = sql(
        stack.env, "SELECT app_id, storage_uri FROM video WHERE id = :v", v=vid
    )
    play = app_a.call("GET", "/video/playurl", {"vid": vid, "format": "mp4"}).json()
    path = unquote(urlsplit(play["play_urls"][0]["url"]).path)
    media_key = path.removeprefix(f"/{OSS_BUCKET}").lstrip("/")
    assert source.startswith(f"sources/{app_id}/") and media_key.startswith(f"media/{vid}/")
    return {"vid": vid, "app_id": app_id, "source": source, "media": media_key, "data": data}


def refusal(r: httpx.Response) -> tuple[int, str, str]:
    body = r.json()
    return r.status_code, body["code"], body["message"]


def videos_of(stack: Stack, api: Api) -> int:
    rows = sql(
        stack.env,
        "SELECT COUNT(*) FROM video v JOIN app a ON a.id = v.app_id WHERE a.app_key = :k",
        k=api.app_key,
    )
    return rows[0][0]


def test_oss_import_of_another_apps_objects_is_refused_like_a_missing_key(
    stack, app_a, app_b, a_video, bucket
):
    a = a_video
    direct_key = f"direct/{a['app_id']}/{secrets.token_hex(8)}/clip.mp4"
    bucket.put_object(direct_key, a["data"])  # as A's browser upload would leave it
    for key in (a["source"], a["media"], direct_key):
        assert bucket.object_exists(key), key
    missing = refusal(
        import_src(app_b, f"oss://{OSS_BUCKET}/incoming/nothing-{secrets.token_hex(4)}")
    )
    assert missing[:2] == (400, "InvalidSource")

    forbidden = [
        a["source"],
        a["media"],
        direct_key,
        f"incoming/../{a['source']}",
        f"./{a['source']}",
        f"incoming//{a['source']}",
        quote(a["source"], safe=""),  # sources%2F...: decodes into the layout
        a["source"].replace("sources/", "Sources/", 1),
        a["source"] + "/",
    ]
    # the checks tell keys apart: B may import an object outside vasset's layout
    bucket.put_object("incoming/control.mp4", a["data"])
    assert import_src(app_b, f"oss://{OSS_BUCKET}/incoming/control.mp4").status_code == 200
    before = videos_of(stack, app_b)
    for key in forbidden:
        r = import_src(app_b, f"oss://{OSS_BUCKET}/{key}")
        assert refusal(r) == missing, (key, r.text)
    # another bucket, or none: the same answer
    assert refusal(import_src(app_b, f"oss://other-bucket/{a['source']}")) == missing
    assert refusal(import_src(app_b, "oss:///incoming/clip.mp4")) == missing
    assert refusal(import_src(app_b, "oss://[vasset-test/incoming/clip.mp4")) == missing
    assert videos_of(stack, app_b) == before == 1


def test_oss_import_outside_vasset_prefixes_works_with_only_the_storage_url(
    stack, app_b, clips, bucket
):
    data = media.landscape(clips).read_bytes()
    bucket.put_object("incoming/clip.mp4", data)
    r = import_src(app_b, f"oss://{OSS_BUCKET}/incoming/clip.mp4")
    assert r.status_code == 200, r.text
    vid = r.json()["vid"]
    wait_playable(app_b, vid)
    info = app_b.call("GET", "/video/mediainfo", {"vid": vid}).json()
    assert (info["video_width"], info["video_height"]) == (320, 180)
    assert info["md5"] == hashlib.md5(data).hexdigest()
    ((app_id, source),) = sql(
        stack.env, "SELECT app_id, storage_uri FROM video WHERE id = :v", v=vid
    )
    assert source.startswith(f"sources/{app_id}/{vid}/")
    assert bucket.get_object(source).read() == data


def test_oss_import_of_own_objects_is_allowed(stack, app_a, a_video):
    for key in (a_video["source"], a_video["media"]):
        r = import_src(app_a, f"oss://{OSS_BUCKET}/{key}")
        assert r.status_code == 200, (key, r.text)
        wait_playable(app_a, r.json()["vid"])


def test_worker_refuses_a_queued_import_of_another_apps_source(stack, app_b, a_video, bucket):
    """A job that never passed the request check (queued before it existed) is refused too."""
    from vasset.db import create_engine, transaction
    from vasset.transcode import queue
    from vasset.videos import repository as videos

    ((b_id,),) = sql(stack.env, "SELECT id FROM app WHERE app_key = :k", k=app_b.app_key)

    async def enqueue() -> int:
        engine = create_engine(stack.env["VASSET_DATABASE_URL"], pool_size=1)
        try:
            async with transaction(engine) as conn:
                vid = await videos.insert_video(
                    conn, app_id=b_id, source_name="source", status="uploading", image_count=1
                )
                src = f"oss://{OSS_BUCKET}/{a_video['source']}"
                await queue.enqueue(conn, b_id, vid, "import", 0, 1, {"src": src, "dst": None})
            return vid
        finally:
            await engine.dispose()

    vid = asyncio.run(enqueue())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ((state, error),) = sql(
            stack.env, "SELECT state, error FROM transcode_job WHERE video_id = :v", v=vid
        )
        if state not in ("queued", "running"):
            break
        time.sleep(0.2)
    assert state == "failed" and error.startswith("InvalidSource"), (state, error)
    assert importer.OSS_REFUSED in error
    assert not list(oss2.ObjectIteratorV2(bucket, prefix=f"sources/{b_id}/{vid}/"))


def test_http_import_of_a_loopback_literal_is_refused_at_request_time(stack, app_b, internal):
    before = videos_of(stack, app_b)
    for src in (f"http://127.0.0.1:{internal.port}/secret", f"http://[::1]:{internal.port}/secret"):
        r = import_src(app_b, src)
        assert r.status_code == 400 and r.json()["code"] == "InvalidSource", r.text
    assert videos_of(stack, app_b) == before
    assert internal.hits == []
