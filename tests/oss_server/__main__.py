"""Run the OSS test server by hand: ``python -m tests.oss_server --port 9000 ...``."""

from __future__ import annotations

import argparse
import signal
import threading

from .server import OssServer


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, serve until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m tests.oss_server", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--access-key-id", required=True)
    parser.add_argument("--access-key-secret", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--security-token", default=None, help="require this STS token")
    parser.add_argument("--region", default="cn-hangzhou", help="region V4 signatures must name")
    parser.add_argument("--data-dir", default=None, help="where bodies go (default: a temp dir)")
    parser.add_argument(
        "--no-crc", action="store_true", help="skip CRC64 (faster; clients then cannot check it)"
    )
    args = parser.parse_args(argv)
    server = OssServer(
        args.access_key_id,
        args.access_key_secret,
        args.bucket,
        host=args.host,
        port=args.port,
        data_dir=args.data_dir,
        security_token=args.security_token,
        region=args.region,
        crc64=not args.no_crc,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server.start()
    print(f"OSS test server for bucket {args.bucket!r} at {server.endpoint}", flush=True)
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


if __name__ == "__main__":
    main()
