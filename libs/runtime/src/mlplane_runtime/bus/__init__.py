"""Bus transports: RabbitMQ (FastStream) and the embedded one, behind `Transport`."""

from mlplane_runtime.bus.base import (
    DeadLetter,
    DeliveryHandler,
    InboundMessage,
    OutboundMessage,
    PoisonMessage,
    RetryPolicy,
    Transport,
)

__all__ = [
    "DeadLetter",
    "DeliveryHandler",
    "InboundMessage",
    "OutboundMessage",
    "PoisonMessage",
    "RetryPolicy",
    "Transport",
]
