"""HTTP routes of /webhooks/*: endpoints and deliveries (signed)."""

from __future__ import annotations

from typing import Any

from litestar import get, post
from litestar.di import NamedDependency

from vasset import errors
from vasset.events.schemas import (
    CreateParams,
    DeliveriesParams,
    Delivery,
    DeliveryList,
    DeliveryParams,
    EndpointCreated,
    EndpointDeleted,
    EndpointList,
    EndpointParams,
    Rotated,
)
from vasset.http.deps import Caller, Ctx, query
from vasset.http.openapi import doc
from vasset.http.schemas import shaped

TAG = "webhooks"
_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw+1Ax2bpSr0E="
_URL = "https://example.com/hooks/vasset"
_DELIVERY = {
    "id": 1234,
    "endpoint_id": 7,
    "event_id": 981,
    "event_type": "video.playable",
    "status": "pending",
    "attempts": 2,
    "last_status": 503,
    "last_error": "HTTP 503",
    "next_attempt_at": 1700000300000,
    "create_time": 1700000000,
}


@post(
    "/webhooks/endpoints",
    status_code=200,
    dependencies={"q": query(CreateParams, signed=True)},
    **doc(
        tag=TAG,
        query=CreateParams,
        codes=(errors.InvalidWebhookUrl, errors.InvalidState),
        example={"id": 7, "url": _URL, "events": ["video.playable"], "secret": _SECRET},
    ),
)
async def endpoint_create(
    ctx: Ctx, caller: Caller, q: NamedDependency[CreateParams]
) -> EndpointCreated:
    """Register a webhook endpoint; the answer is the only one that shows its secret."""
    return shaped(await ctx.webhooks.create(caller.id, q.url, q.events), EndpointCreated)


@get(
    "/webhooks/endpoints",
    **doc(
        tag=TAG,
        example={
            "endpoints": [
                {
                    "id": 7,
                    "url": _URL,
                    "events": ["*"],
                    "enabled": True,
                    "disabled_reason": None,
                    "last_success_at": 1700000100,
                    "failing_since": None,
                    "old_secret_expires_at": None,
                    "create_time": 1700000000,
                }
            ]
        },
    ),
)
async def endpoint_list(ctx: Ctx, caller: Caller) -> EndpointList:
    """The caller's webhook endpoints, oldest first (no secrets)."""
    return shaped({"endpoints": await ctx.webhooks.endpoints(caller.id)}, EndpointList)


@post(
    "/webhooks/endpoints/delete",
    status_code=200,
    dependencies={"q": query(EndpointParams, signed=True)},
    **doc(
        tag=TAG,
        query=EndpointParams,
        codes=(errors.EndpointNotFound,),
        example={"id": 7, "deleted": True},
    ),
)
async def endpoint_delete(
    ctx: Ctx, caller: Caller, q: NamedDependency[EndpointParams]
) -> EndpointDeleted:
    """Delete an endpoint: nothing more is delivered to it."""
    return shaped(await ctx.webhooks.delete(caller.id, q.id), EndpointDeleted)


@post(
    "/webhooks/endpoints/rotate",
    status_code=200,
    dependencies={"q": query(EndpointParams, signed=True)},
    **doc(
        tag=TAG,
        query=EndpointParams,
        codes=(errors.EndpointNotFound,),
        example={"id": 7, "secret": _SECRET, "old_secret_expires_at": 1700086400},
    ),
)
async def endpoint_rotate(ctx: Ctx, caller: Caller, q: NamedDependency[EndpointParams]) -> Rotated:
    """A new signing secret; until old_secret_expires_at deliveries carry both signatures."""
    return shaped(await ctx.webhooks.rotate(caller.id, q.id), Rotated)


@get(
    "/webhooks/deliveries",
    dependencies={"q": query(DeliveriesParams, signed=True)},
    **doc(
        tag=TAG,
        query=DeliveriesParams,
        codes=(errors.EndpointNotFound,),
        example={"deliveries": [_DELIVERY], "next_before": None},
    ),
)
async def delivery_list(
    ctx: Ctx, caller: Caller, q: NamedDependency[DeliveriesParams]
) -> DeliveryList:
    """An endpoint's deliveries, newest first: attempts, last HTTP status, next attempt."""
    page: dict[str, Any] = await ctx.webhooks.deliveries(
        caller.id, q.endpoint_id, q.status, q.before, q.limit
    )
    return shaped(page, DeliveryList)


@post(
    "/webhooks/deliveries/retry",
    status_code=200,
    dependencies={"q": query(DeliveryParams, signed=True)},
    **doc(
        tag=TAG,
        query=DeliveryParams,
        codes=(errors.DeliveryNotFound, errors.InvalidState),
        example={**_DELIVERY, "next_attempt_at": 1700000400000},
    ),
)
async def delivery_retry(ctx: Ctx, caller: Caller, q: NamedDependency[DeliveryParams]) -> Delivery:
    """Send a failed or pending delivery again now (its attempts are kept)."""
    return shaped(await ctx.webhooks.retry(caller.id, q.id), Delivery)


ROUTES = [
    endpoint_create,
    endpoint_list,
    endpoint_delete,
    endpoint_rotate,
    delivery_list,
    delivery_retry,
]
