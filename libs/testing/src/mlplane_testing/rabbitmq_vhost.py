"""A RabbitMQ virtual host of a test's own, made with `rabbitmqctl` and deleted after.

Services name their queues after the platform (`mlplane.registry`, ...): a test that
runs whole services beside other tests on the same broker gives them a virtual host
of their own, so their queues never meet another run's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit
from uuid import uuid4

DEFAULT_TEST_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


@contextmanager
def rabbitmq_vhost() -> Iterator[str]:
    """The test broker's AMQP URL (MLPLANE_TEST_AMQP_URL) on a new virtual host."""
    ctl = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    name = f"t_{uuid4().hex[:10]}"
    base = urlsplit(os.environ.get("MLPLANE_TEST_AMQP_URL", DEFAULT_TEST_AMQP_URL))
    user = base.username or "guest"
    subprocess.run([ctl, "-q", "add_vhost", name], check=True, timeout=60)
    try:
        permissions = [ctl, "-q", "set_permissions", "-p", name, user, ".*", ".*", ".*"]
        subprocess.run(permissions, check=True, timeout=60)
        yield urlunsplit(base._replace(path=f"/{name}"))
    finally:
        subprocess.run([ctl, "-q", "delete_vhost", name], check=False, timeout=60)
