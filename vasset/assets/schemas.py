"""Query parameters and answers of /video/assets."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from vasset.http.params import Id
from vasset.http.schemas import Answer

AssetId = Annotated[Id, msgspec.Meta(description="image asset id", examples=[12])]
Kind = Literal["watermark"]


class PutParams(msgspec.Struct):
    """Query of PUT /video/assets (the body is the PNG)."""

    kind: Annotated[Kind, msgspec.Meta(description="what the image is for")]


class AssetParams(msgspec.Struct):
    """A query that names one asset."""

    asset_id: AssetId


class Asset(Answer):
    """One stored image asset."""

    asset_id: int
    kind: Kind
    width: int
    height: int
    size: int
    create_time: Annotated[int, msgspec.Meta(description="unix seconds")]


class AssetList(Answer):
    """The app's image assets, oldest first."""

    assets: list[Asset]


class AssetDeleted(Answer):
    """An asset is gone; jobs that name it later fail with AssetNotFound."""

    asset_id: int
    deleted: Literal[True]
