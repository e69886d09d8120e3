"""JSON logs: one object per line, the active trace ids on each, and no secret ever written."""

from __future__ import annotations

import io
import logging
from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mlplane_runtime.telemetry.human import HumanFormatter
from mlplane_runtime.telemetry.logging import (
    configure_logging,
    formatter_for,
    redact_text,
    redact_value,
)
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from .log_capture import captured_json_logs
from .otel_fixtures import fresh_span_exporter


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return fresh_span_exporter()


def _logger() -> logging.Logger:
    return logging.getLogger(f"mlplane.test.{uuid4().hex[:8]}")


class TestJsonLines:
    def test_record_is_one_json_object_with_the_standard_fields(self) -> None:
        log = _logger()
        with captured_json_logs(service="registry") as logs:
            log.warning("model %s registered", "fraud")
        (line,) = logs.lines()
        assert line["message"] == "model fraud registered"
        assert line["level"] == "WARNING"
        assert line["logger"] == log.name
        assert line["service"] == "registry"
        assert "timestamp" in line
        assert line["trace_id"] is None
        assert line["span_id"] is None

    def test_extra_fields_are_top_level_keys(self) -> None:
        with captured_json_logs() as logs:
            _logger().info("built", extra={"digest": "sha256:" + "a" * 64, "layers": 3})
        (line,) = logs.lines()
        assert line["digest"] == "sha256:" + "a" * 64
        assert line["layers"] == 3

    def test_exception_traceback_is_in_the_line(self) -> None:
        with captured_json_logs() as logs:
            try:
                raise KeyError("missing-thing")
            except KeyError:
                _logger().exception("lookup failed")
        (line,) = logs.lines()
        assert "Traceback" in line["exc_info"]
        assert "missing-thing" in line["exc_info"]

    def test_level_below_the_configured_one_is_dropped(self) -> None:
        with captured_json_logs(level="WARNING") as logs:
            _logger().info("quiet")
            _logger().error("loud")
        assert [line["message"] for line in logs.lines()] == ["loud"]

    def test_configuring_twice_writes_each_record_once(self) -> None:
        with captured_json_logs() as logs:
            configure_logging("again", "INFO", stream=logs.stream)
            _logger().info("once")
        assert [line["message"] for line in logs.lines()] == ["once"]

    def test_uvicorn_records_go_through_the_json_handler(self) -> None:
        with captured_json_logs() as logs:
            logging.getLogger("uvicorn.error").info("Started server process")
        (line,) = logs.lines()
        assert line["logger"] == "uvicorn.error"
        assert "color_message" not in line

    def test_http_client_request_lines_are_not_written(self) -> None:
        # httpx logs "HTTP Request: PATCH <url>" at INFO; an OCI upload URL carries
        # its upload state token in the query.
        with captured_json_logs() as logs:
            logging.getLogger("httpx").info(
                "HTTP Request: PATCH http://r/v2/b/uploads/1?_state=tok"
            )
            logging.getLogger("httpx").warning("connection pool full")
        assert [line["message"] for line in logs.lines()] == ["connection pool full"]

    def test_a_name_that_only_contains_a_secret_word_keeps_its_value(self) -> None:
        # Alembic's own message: masking it said nothing and hid what happened.
        message = "api_key_notify: NOTIFY when an API key is revoked; token_count: 3"
        assert redact_text(message) == message
        assert redact_text("db_password=hunter2 client_secret: abc") == (
            "db_password=*** client_secret: ***"
        )

    def test_human_lines_at_a_terminal_json_elsewhere(self) -> None:
        class Terminal(io.StringIO):
            def isatty(self) -> bool:
                return True

        terminal, piped = Terminal(), io.StringIO()
        assert isinstance(formatter_for("registry", "auto", terminal), HumanFormatter)
        assert not isinstance(formatter_for("registry", "auto", piped), HumanFormatter)
        with pytest.raises(ValueError, match="log format"):
            formatter_for("registry", "yaml", piped)
        configure_logging("registry", "INFO", stream=terminal, format="auto")
        try:
            _logger().info("model %s registered", "fraud", extra={"version": 7, "note": "a b"})
        finally:
            configure_logging("registry", "INFO", stream=io.StringIO())
        line = terminal.getvalue().strip()
        assert "\x1b[32mINFO" in line
        assert line.endswith('registry  model fraud registered  version=7  note="a b"')

    def test_unknown_level_raises_value_error(self) -> None:
        with pytest.raises(ValueError, match="LOUD"):
            configure_logging("svc", "LOUD")


class TestTraceIds:
    def test_line_inside_a_span_carries_its_trace_and_span_id(
        self, spans: InMemorySpanExporter
    ) -> None:
        tracer = trace.get_tracer("test")
        with captured_json_logs() as logs, tracer.start_as_current_span("work") as span:
            _logger().info("inside")
        context = span.get_span_context()
        (line,) = logs.lines()
        assert line["trace_id"] == format(context.trace_id, "032x")
        assert line["span_id"] == format(context.span_id, "016x")

    def test_line_after_the_span_has_no_trace_id(self, spans: InMemorySpanExporter) -> None:
        tracer = trace.get_tracer("test")
        with captured_json_logs() as logs:
            with tracer.start_as_current_span("work"):
                pass
            _logger().info("after")
        assert logs.lines()[0]["trace_id"] is None


class TestRedaction:
    def test_url_password_in_the_message_is_masked(self) -> None:
        with captured_json_logs() as logs:
            _logger().info("connecting to %s", "postgresql://registry:s3cr3t@db:5432/mlplane")
        assert "s3cr3t" not in logs.text
        assert (
            logs.lines()[0]["message"] == "connecting to postgresql://registry:***@db:5432/mlplane"
        )

    def test_url_password_in_an_extra_field_is_masked(self) -> None:
        with captured_json_logs() as logs:
            _logger().info("start", extra={"broker_url": "amqp://mlplane:hunter2@rabbit:5672/"})
        assert "hunter2" not in logs.text
        assert logs.lines()[0]["broker_url"] == "amqp://mlplane:***@rabbit:5672/"

    def test_authorization_header_is_masked(self) -> None:
        headers = {"Authorization": "Bearer eyJhbGciOi.payload.sig", "Accept": "text/plain"}
        with captured_json_logs() as logs:
            _logger().info("request headers %s", headers)
            _logger().info("outbound call", extra={"headers": headers})
        assert "eyJhbGciOi" not in logs.text
        first, second = logs.lines()
        assert "Bearer ***" in first["message"]
        assert second["headers"] == {"Authorization": "***", "Accept": "text/plain"}

    @pytest.mark.parametrize(
        "key", ["password", "db_password", "client_secret", "token", "api_key"]
    )
    def test_extra_named_like_a_secret_is_masked(self, key: str) -> None:
        with captured_json_logs() as logs:
            _logger().info("settings", extra={key: "v3ry-s3cret-value"})
        assert "v3ry-s3cret-value" not in logs.text
        assert logs.lines()[0][key] == "***"

    def test_secret_in_an_exception_traceback_is_masked(self) -> None:
        with captured_json_logs() as logs:
            try:
                raise ConnectionError("cannot reach postgresql://u:tr4ceback-pw@db/x")
            except ConnectionError:
                _logger().exception("database down")
        assert "tr4ceback-pw" not in logs.text
        assert "postgresql://u:***@db/x" in logs.lines()[0]["exc_info"]

    def test_secret_assignments_in_text_are_masked(self) -> None:
        with captured_json_logs() as logs:
            _logger().info("GET /hooks?token=abc123&team=ml api_key=k-999 password: pw-1")
        message = logs.lines()[0]["message"]
        assert message == "GET /hooks?token=***&team=ml api_key=*** password: ***"

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("postgresql://u:secret@h", "postgresql://u:***@h"),
            ("postgresql+asyncpg://u:p%40ss@h:5432/db", "postgresql+asyncpg://u:***@h:5432/db"),
            ("redis://:only-pw@cache:6379/0", "redis://:***@cache:6379/0"),
            ("Authorization: Basic dXNlcjpwYXNz", "Authorization: Basic ***"),
            ("authorization=tok", "authorization=***"),
            ("http://host:8080/path@v1", "http://host:8080/path@v1"),
            ("https://registry.example/v2/", "https://registry.example/v2/"),
            ("scanned 3 layers in 2s", "scanned 3 layers in 2s"),
        ],
    )
    def test_redact_text(self, text: str, expected: str) -> None:
        assert redact_text(text) == expected

    def test_redact_value_walks_nested_structures(self) -> None:
        value = {"outer": [{"password": "x", "url": "amqp://a:b@c/"}], "n": 1}
        assert redact_value(value) == {
            "outer": [{"password": "***", "url": "amqp://a:***@c/"}],
            "n": 1,
        }

    @given(
        password=st.text(
            alphabet=st.characters(categories=["L", "N"], include_characters="-_.~!$*"),
            min_size=4,
        ),
        user=st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True),
    )
    def test_no_url_password_survives(self, password: str, user: str) -> None:
        url = f"postgresql://{user}:{password}@db.internal:5432/mlplane"
        assert redact_text(f"connecting to {url}") == (
            f"connecting to postgresql://{user}:***@db.internal:5432/mlplane"
        )
