"""Query parameters and answers of /webhooks/*."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from vasset.http.params import Id
from vasset.http.schemas import Answer

EndpointId = Annotated[Id, msgspec.Meta(description="webhook endpoint id", examples=[7])]
DeliveryId = Annotated[Id, msgspec.Meta(description="webhook delivery id", examples=[1234])]
DeliveryStatus = Literal["pending", "succeeded", "failed"]
Secret = Annotated[
    str,
    msgspec.Meta(
        description="signing secret: whsec_ + Base64 of 32 random bytes (shown only here)",
        pattern="^whsec_[A-Za-z0-9+/]{43}=$",
        examples=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw+1Ax2bpSr0E="],
    ),
]
Events = Annotated[
    list[str],
    msgspec.Meta(
        description='the event types sent to it, or ["*"] for all (docs/EVENTS.md)',
        examples=[["video.playable", "video.transcode.failed"]],
    ),
]
UnixSeconds = Annotated[int, msgspec.Meta(description="unix seconds")]


class CreateParams(msgspec.Struct):
    """Query of POST /webhooks/endpoints."""

    url: Annotated[
        str,
        msgspec.Meta(
            description="http(s) URL the events are POSTed to; its host must be public unless"
            " it is on VASSET_WEBHOOK_ALLOW_HOSTS",
            examples=["https://example.com/hooks/vasset"],
        ),
    ]
    events: Annotated[
        str,
        msgspec.Meta(
            description="comma list of event types, or * (every type)",
            examples=["video.playable,video.transcode.failed"],
        ),
    ] = "*"


class EndpointParams(msgspec.Struct):
    """A query that names one endpoint."""

    id: EndpointId


class DeliveriesParams(msgspec.Struct):
    """Query of GET /webhooks/deliveries."""

    endpoint_id: EndpointId
    status: Annotated[
        DeliveryStatus | None, msgspec.Meta(description="only deliveries in this status")
    ] = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=500, description="page size, 1-500")] = 100
    before: Annotated[
        Id | None, msgspec.Meta(description="next_before of the last page: older deliveries")
    ] = None


class DeliveryParams(msgspec.Struct):
    """A query that names one delivery."""

    id: DeliveryId


class EndpointCreated(Answer):
    """Answer of POST /webhooks/endpoints: the only time the secret is shown, with rotate."""

    id: int
    url: str
    events: Events
    secret: Secret


class Endpoint(Answer):
    """One endpoint in GET /webhooks/endpoints (no secrets)."""

    id: int
    url: str
    events: Events
    enabled: bool
    disabled_reason: Annotated[
        str | None, msgspec.Meta(description="why it was disabled (410 Gone, days of failures)")
    ]
    last_success_at: UnixSeconds | None
    failing_since: Annotated[
        int | None, msgspec.Meta(description="unix seconds of the first failure since a success")
    ]
    old_secret_expires_at: Annotated[
        int | None,
        msgspec.Meta(description="during a rotation: unix seconds the old secret signs until"),
    ]
    create_time: UnixSeconds


class EndpointList(Answer):
    """Answer of GET /webhooks/endpoints."""

    endpoints: list[Endpoint]


class EndpointDeleted(Answer):
    """Answer of POST /webhooks/endpoints/delete."""

    id: int
    deleted: Literal[True] = True


class Rotated(Answer):
    """Answer of POST /webhooks/endpoints/rotate."""

    id: int
    secret: Secret
    old_secret_expires_at: Annotated[
        int, msgspec.Meta(description="unix seconds the previous secret keeps signing until")
    ]


class Delivery(Answer):
    """One delivery of an event to an endpoint."""

    id: int
    endpoint_id: int
    event_id: Annotated[int, msgspec.Meta(description="the event's id (its webhook-id is evt_ID)")]
    event_type: Annotated[str | None, msgspec.Meta(description="null once the event expired")]
    status: DeliveryStatus
    attempts: int
    last_status: Annotated[int | None, msgspec.Meta(description="HTTP status of the last attempt")]
    last_error: str | None
    next_attempt_at: Annotated[
        int | None, msgspec.Meta(description="unix ms of the next attempt (pending only)")
    ]
    create_time: UnixSeconds


class DeliveryList(Answer):
    """Answer of GET /webhooks/deliveries: newest first."""

    deliveries: list[Delivery]
    next_before: Annotated[
        int | None, msgspec.Meta(description="pass as before= for the next page (null: last)")
    ]
