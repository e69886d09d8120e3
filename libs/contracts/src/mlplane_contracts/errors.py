"""The one error that every failure to decode an incoming event raises.

Consumers treat it as poison: no retry can fix a message that does not decode, so
it goes to the dead-letter queue at once with `str(error)` as the reason. The
message therefore names the problem precisely enough to fix the producer.
"""

from __future__ import annotations

from collections.abc import Iterable


class EventDecodeError(ValueError):
    """An incoming message is not a valid mlplane CloudEvent; the message says why."""

    @classmethod
    def missing_attribute(cls, name: str) -> EventDecodeError:
        return cls(f"missing required attribute {name!r}")

    @classmethod
    def unknown_type(cls, event_type: str) -> EventDecodeError:
        return cls(f"unknown event type {event_type!r}")

    @classmethod
    def unsupported_specversion(cls, specversion: object) -> EventDecodeError:
        return cls(f"unsupported specversion {specversion!r} (only '1.0' is accepted)")

    @classmethod
    def unsupported_content_type(cls, content_type: str) -> EventDecodeError:
        return cls(f"unsupported content type {content_type!r} (data must be application/json)")

    @classmethod
    def not_json(cls, what: str, detail: str) -> EventDecodeError:
        return cls(f"{what} is not JSON: {detail}")

    @classmethod
    def invalid_fields(cls, problems: Iterable[tuple[str, str]]) -> EventDecodeError:
        """One error for all invalid fields, each as `path: message`, joined by '; '."""
        return cls("; ".join(f"{path}: {message}" for path, message in problems))
