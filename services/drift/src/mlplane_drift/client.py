"""Send prediction samples from a model server to the drift service, never hurting inference.

    from mlplane_drift.client import DriftClient

    drift = DriftClient("https://mlplane.example", api_key, model="churn", version=3,
                        environment="prod", sample_rate=0.2)
    ...
    drift.record(features, prediction)      # returns at once; never raises
    ...
    drift.close()                           # flushes what is queued (bounded wait)

`record` samples, then puts the sample in a bounded in-memory queue and returns; a
background thread sends batches as JSON to `POST {base_url}/v1/drift/samples` with
`Authorization: Bearer <api key>`. A full queue, a failed send (after one retry), or a sample
that is not JSON is dropped and counted (`stats`), never raised into the caller. Only the
standard library and httpx are imported, so a model server pays for nothing else.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

log = logging.getLogger(__name__)

SAMPLES_PATH = "/v1/drift/samples"
_RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class ClientStats:
    recorded: int
    """Calls to `record`."""
    sampled_out: int
    """Left out by the sample rate (not a loss: by design)."""
    dropped_queue_full: int
    dropped_send_failed: int
    dropped_invalid: int
    """Samples that could not be encoded as JSON."""
    dropped_closed: int
    """Recorded after `close`."""
    sent: int
    """Samples the service accepted."""
    batches_sent: int
    batches_failed: int

    @property
    def dropped(self) -> int:
        return (
            self.dropped_queue_full
            + self.dropped_send_failed
            + self.dropped_invalid
            + self.dropped_closed
        )


class _Counters:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.values = dict.fromkeys(ClientStats.__dataclass_fields__, 0)

    def add(self, name: str, amount: int = 1) -> None:
        with self.lock:
            self.values[name] += amount

    def snapshot(self) -> ClientStats:
        with self.lock:
            return ClientStats(**self.values)


def _jsonable(value: Any) -> Any:
    # numpy arrays and scalars (and look-alikes): `.tolist()` gives Python values; NaN and
    # inf become null (JSON has neither), so the service counts them as missing.
    if hasattr(value, "tolist") and callable(value.tolist):
        return _clean_floats(value.tolist())
    if hasattr(value, "item") and callable(value.item):
        return _clean_floats(value.item())
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _clean_floats(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _clean_floats(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_clean_floats(item) for item in value]
    return value


class DriftClient:
    """Buffers, samples and sends prediction samples in the background (see module doc)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        model: str,
        version: int,
        environment: str,
        sample_rate: float = 1.0,
        max_queue: int = 10_000,
        batch_size: int = 500,
        flush_interval: float = 5.0,
        timeout: float = 5.0,
        retry_delay: float = 0.5,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not 0.0 <= sample_rate <= 1.0:
            raise ValueError("sample_rate must be within [0, 1]")
        if max_queue < 1 or batch_size < 1:
            raise ValueError("max_queue and batch_size must be positive")
        self._url = base_url.rstrip("/") + SAMPLES_PATH
        self._meta = {"model": model, "version": int(version), "environment": environment}
        self._sample_rate = sample_rate
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._retry_delay = retry_delay
        self._random = random.Random()
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=max_queue)
        self._counters = _Counters()
        self._progress = threading.Condition()
        self._accepted = 0
        self._settled = 0
        self._flush_now = threading.Event()
        self._stopping = threading.Event()
        self._closed = False
        self._http = httpx.Client(
            timeout=timeout,
            transport=transport,
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": "mlplane-drift-client"},
        )
        self._thread = threading.Thread(target=self._run, name="mlplane-drift-client", daemon=True)
        self._thread.start()

    # -- the inference side: never blocks, never raises ---------------------------------

    def record(
        self, features: Mapping[str, Any], prediction: Any = None, label: Any = None
    ) -> bool:
        """Queue one sample; True if queued, False if sampled out or dropped (counted)."""
        try:
            self._counters.add("recorded")
            if self._closed:
                self._counters.add("dropped_closed")
                return False
            if self._sample_rate < 1.0 and self._random.random() >= self._sample_rate:
                self._counters.add("sampled_out")
                return False
            sample = {"features": dict(features), "prediction": prediction, "label": label}
            try:
                self._queue.put_nowait(sample)
            except queue.Full:
                self._counters.add("dropped_queue_full")
                return False
            with self._progress:
                self._accepted += 1
            return True
        except Exception:
            self._counters.add("dropped_invalid")
            return False

    @property
    def stats(self) -> ClientStats:
        return self._counters.snapshot()

    # -- lifecycle ---------------------------------------------------------------------

    def flush(self, timeout: float = 10.0) -> bool:
        """Send what is queued now; True when all of it was sent or dropped within `timeout`."""
        with self._progress:
            target = self._accepted
        self._flush_now.set()
        deadline = time.monotonic() + timeout
        with self._progress:
            while self._settled < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._thread.is_alive():
                    return False
                self._progress.wait(remaining)
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Flush (waiting at most `timeout`), stop the sender and release the connection."""
        if self._closed:
            return
        self._closed = True
        self.flush(timeout)
        self._stopping.set()
        self._flush_now.set()
        self._thread.join(timeout)
        self._http.close()

    def __enter__(self) -> DriftClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the sender thread ---------------------------------------------------------------

    def _run(self) -> None:
        while True:
            batch = self._take_batch()
            if batch:
                self._send(batch)
            elif self._stopping.is_set():
                return

    def _take_batch(self) -> list[dict[str, Any]]:
        """Up to batch_size samples: once there are that many, on flush, or on the interval."""
        batch: list[dict[str, Any]] = []
        deadline = time.monotonic() + self._flush_interval
        while len(batch) < self._batch_size:
            try:
                batch.append(self._queue.get_nowait())
                continue
            except queue.Empty:
                pass
            if self._flush_now.is_set() or self._stopping.is_set():
                if self._queue.empty():
                    self._flush_now.clear()
                    break
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(self._queue.get(timeout=min(remaining, 0.05)))
            except queue.Empty:
                continue
        return batch

    def _settle(self, count: int) -> None:
        with self._progress:
            self._settled += count
            self._progress.notify_all()

    def _encode(self, batch: list[dict[str, Any]]) -> tuple[bytes, int] | None:
        samples: list[str] = []
        for sample in batch:
            try:
                samples.append(
                    json.dumps(_clean_floats(sample), default=_jsonable, allow_nan=False)
                )
            except (TypeError, ValueError, OverflowError):
                self._counters.add("dropped_invalid")
        if not samples:
            return None
        head = json.dumps(self._meta)[:-1]
        return f'{head}, "samples": [{", ".join(samples)}]}}'.encode(), len(samples)

    def _send(self, batch: list[dict[str, Any]]) -> None:
        try:
            encoded = self._encode(batch)
            if encoded is None:
                return
            body, count = encoded
            for attempt in range(2):
                try:
                    response = self._http.post(
                        self._url, content=body, headers={"Content-Type": "application/json"}
                    )
                except httpx.HTTPError as exc:
                    failure = type(exc).__name__
                else:
                    if response.is_success:
                        self._counters.add("sent", count)
                        self._counters.add("batches_sent")
                        return
                    failure = f"HTTP {response.status_code}"
                    if response.status_code not in _RETRYABLE_STATUS:
                        break
                if attempt == 0 and not self._stopping.is_set():
                    time.sleep(self._retry_delay)
            log.warning("drift samples not sent (%s); %d dropped", failure, count)
            self._counters.add("dropped_send_failed", count)
            self._counters.add("batches_failed")
        except Exception:
            log.exception("drift sample sender failed; batch dropped")
            self._counters.add("dropped_send_failed", len(batch))
            self._counters.add("batches_failed")
        finally:
            self._settle(len(batch))
