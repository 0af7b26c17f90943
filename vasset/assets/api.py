"""HTTP routes of /video/assets: upload (PUT, the PNG as body), list and delete (signed)."""

from __future__ import annotations

from litestar import Request, get, post, put
from litestar.di import NamedDependency

from vasset import errors
from vasset.assets.schemas import Asset, AssetDeleted, AssetList, AssetParams, PutParams
from vasset.assets.service import AssetService, read_limited
from vasset.context import Context
from vasset.http.auth import query_string
from vasset.http.body import ClientGone, body_chunks, settle_body
from vasset.http.deps import Caller, Ctx, provide_caller, query
from vasset.http.openapi import doc
from vasset.http.params import parse_params
from vasset.http.schemas import shaped

TAG = "assets"
_ASSET = {
    "asset_id": 12,
    "kind": "watermark",
    "width": 320,
    "height": 96,
    "size": 5120,
    "create_time": 1700000000,
}


def _service(ctx: Context) -> AssetService:
    return AssetService(ctx.engine, ctx.store, ctx.settings)


def _content_length(request: Request) -> int | None:
    value = (request.headers.get("content-length") or "").strip()
    # ASCII digits only, BIGINT-sized at most (int() would take "+1" or thousands of digits).
    if value.isascii() and value.isdigit() and len(value) <= 18:
        return int(value)
    return None


@put(
    "/video/assets",
    status_code=200,
    request_max_body_size=None,
    **doc(
        tag=TAG,
        query=PutParams,
        codes=(
            errors.InvalidImage,
            errors.EntityTooLarge,
            errors.IncompleteBody,
            errors.InvalidState,
        ),
        body="the PNG's bytes (at most VASSET_ASSET_MAX_SIZE)",
        example=_ASSET,
    ),
)
async def asset_put(request: Request, ctx: Ctx) -> Asset:
    """Store a PNG image asset (a watermark) of the app; it is validated before it is kept."""
    try:
        # Authenticated and parsed here, not as dependencies: a refusal must settle the body.
        caller = await provide_caller(request, ctx)
        q = parse_params(query_string(request), PutParams)
        try:
            data = await read_limited(
                body_chunks(request), _content_length(request), ctx.settings.asset_max_size
            )
        except ClientGone:
            raise errors.IncompleteBody(
                "the client disconnected mid-body; nothing was stored"
            ) from None
        return shaped(await _service(ctx).put(caller.id, q.kind, data), Asset)
    except errors.VassetError as exc:
        await settle_body(request, exc)
        raise


@get("/video/assets", **doc(tag=TAG, example={"assets": [_ASSET]}))
async def asset_list(ctx: Ctx, caller: Caller) -> AssetList:
    """The app's image assets, oldest first."""
    return shaped(await _service(ctx).listing(caller.id), AssetList)


@post(
    "/video/assets/delete",
    status_code=200,
    dependencies={"q": query(AssetParams, signed=True)},
    **doc(
        tag=TAG,
        query=AssetParams,
        codes=(errors.AssetNotFound,),
        example={"asset_id": 12, "deleted": True},
    ),
)
async def asset_delete(ctx: Ctx, caller: Caller, q: NamedDependency[AssetParams]) -> AssetDeleted:
    """Delete an asset; transcodes already running keep their copy, later ones fail."""
    return shaped(await _service(ctx).delete(caller.id, q.asset_id), AssetDeleted)


ROUTES = [asset_put, asset_list, asset_delete]
