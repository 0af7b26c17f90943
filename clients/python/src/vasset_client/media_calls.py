"""The calls on a video's media beyond play URLs: assets, templates, storyboards, thumbnails,
playback policy and captions (a part of Client, kept apart so client.py stays readable)."""

from __future__ import annotations

from typing import Any

from vasset_client.models import Captions
from vasset_client.transport import SignedTransport

__all__ = ["MediaCalls"]


class MediaCalls(SignedTransport):
    """Client's media calls (use Client)."""

    def put_asset(self, png: bytes, kind: str = "watermark") -> dict[str, Any]:
        """PUT /video/assets: store a PNG image asset; answers asset_id, width, height, size."""
        return self.request("PUT", "/video/assets", {"kind": kind}, content=png)

    def assets(self) -> list[dict[str, Any]]:
        """GET /video/assets: the app's image assets, oldest first."""
        return list(self.request("GET", "/video/assets")["assets"])

    def delete_asset(self, asset_id: int) -> dict[str, Any]:
        """POST /video/assets/delete: later transcodes naming it fail with AssetNotFound."""
        return self.request("POST", "/video/assets/delete", {"asset_id": asset_id})

    def save_template(self, name: str, **options: Any) -> dict[str, Any]:
        """POST /video/templates: create or replace a named template (options as on transcode)."""
        return self.request("POST", "/video/templates", {"name": name, **options})

    def templates(self) -> list[dict[str, Any]]:
        """GET /video/templates: the app's transcode templates by name."""
        return list(self.request("GET", "/video/templates")["templates"])

    def delete_template(self, name: str) -> dict[str, Any]:
        """POST /video/templates/delete."""
        return self.request("POST", "/video/templates/delete", {"name": name})

    def storyboard(self, vid: int, expires: int | None = None) -> dict[str, Any]:
        """GET /video/storyboard: the WebVTT track and sprite sheets (signed, expiring URLs)."""
        return self.request("GET", "/video/storyboard", {"vid": vid, "expires": expires})

    def thumbnail(
        self,
        vid: int,
        time: int | None = None,
        width: int | None = None,
        format: str | None = None,
        expires: int | None = None,
    ) -> dict[str, Any]:
        """GET /video/thumbnail: a URL to the frame at time (ms), width px wide, jpg or webp."""
        params = {"vid": vid, "time": time, "width": width, "format": format, "expires": expires}
        return self.request("GET", "/video/thumbnail", params)

    def set_playback_policy(self, vid: int, playback_policy: str) -> dict[str, Any]:
        """POST /video/policy: signed (expiring URLs) or public (stable, cacheable URLs)."""
        params = {"vid": vid, "playback_policy": playback_policy}
        return self.request("POST", "/video/policy", params)

    def put_captions(
        self, vid: int, lang: str, data: bytes | str, label: str | None = None
    ) -> dict[str, Any]:
        """PUT /video/captions: add or replace one language's WebVTT or SRT captions."""
        body = data.encode() if isinstance(data, str) else data
        params = {"vid": vid, "lang": lang, "label": label}
        return self.request("PUT", "/video/captions", params, content=body)

    def captions(self, vid: int, expires: int | None = None) -> Captions:
        """GET /video/captions: the video's caption tracks (signed, expiring URLs)."""
        params = {"vid": vid, "expires": expires}
        return Captions.from_dict(self.request("GET", "/video/captions", params))

    def delete_captions(self, vid: int, lang: str) -> dict[str, Any]:
        """POST /video/captions/delete: remove one language's captions."""
        params = {"vid": vid, "lang": lang}
        return self.request("POST", "/video/captions/delete", params)
