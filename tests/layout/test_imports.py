"""The layout holds at run time: test-only code stays out of services, the OCI client
out of the runtime. Each check imports in a fresh interpreter, so what this session's
tests imported does not count."""

from __future__ import annotations

import subprocess
import sys
import textwrap

TEST_ONLY = ("hypothesis", "pytest", "_pytest")


def modules_loaded_by(code: str) -> set[str]:
    """The top-level packages in sys.modules after running `code` in a new interpreter."""
    script = textwrap.dedent(code) + "\nimport sys\nprint('\\n'.join(sys.modules))\n"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return {name.partition(".")[0] for name in done.stdout.split()}


class TestServiceImports:
    def test_services_and_the_cli_load_no_test_only_package(self) -> None:
        loaded = modules_loaded_by(
            """
            from importlib.metadata import entry_points
            for plugin in entry_points(group="mlplane.services"):
                plugin.load()
            import mlplane_runtime.platform
            import mlplane_sdk.cli
            """
        )
        assert "mlplane_builder" in loaded  # the plug-ins were found and loaded
        assert loaded.isdisjoint(TEST_ONLY)


class TestRuntimeImports:
    def test_runtime_does_not_import_the_oci_client(self) -> None:
        loaded = modules_loaded_by(
            """
            import importlib, pkgutil
            import mlplane_runtime
            for module in pkgutil.walk_packages(mlplane_runtime.__path__, "mlplane_runtime."):
                importlib.import_module(module.name)
            """
        )
        assert "mlplane_runtime" in loaded
        assert "mlplane_oci" not in loaded
