"""How git reaches a remote: credentials as environment, never in argv, URLs or errors.

- HTTPS: the token travels as an `http.extraHeader` set through `GIT_CONFIG_*`
  variables (not `-c`, which `ps` shows), so the remote URL stays clean.
- SSH: a key file and a known-hosts file; host keys are checked strictly.
- Always: `GIT_TERMINAL_PROMPT=0` (fail, never wait for a person), no system
  config, no credential helper.

`redact` removes every secret and any `user:password@` from text before it
reaches a log line or an error.
"""

from __future__ import annotations

import base64
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class GitCredentials:
    username: str | None = None
    token: SecretStr | None = None
    ssh_key_file: Path | None = None
    known_hosts_file: Path | None = None

    def _basic(self) -> str | None:
        if self.token is None:
            return None
        pair = f"{self.username or 'x-access-token'}:{self.token.get_secret_value()}"
        return base64.b64encode(pair.encode()).decode()

    def environment(self) -> dict[str, str]:
        """Variables to add to git's environment for this remote."""
        config = [
            ("credential.helper", ""),
            ("commit.gpgsign", "false"),
            ("core.hooksPath", "/dev/null"),
        ]
        basic = self._basic()
        if basic is not None:
            config.append(("http.extraHeader", f"Authorization: Basic {basic}"))
        env = {
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GCM_INTERACTIVE": "never",
            "GIT_CONFIG_COUNT": str(len(config)),
        }
        for index, (key, value) in enumerate(config):
            env[f"GIT_CONFIG_KEY_{index}"] = key
            env[f"GIT_CONFIG_VALUE_{index}"] = value
        if self.ssh_key_file is not None:
            command = [
                "ssh",
                "-i",
                str(self.ssh_key_file),
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=yes",
            ]
            if self.known_hosts_file is not None:
                command += ["-o", f"UserKnownHostsFile={self.known_hosts_file}"]
            env["GIT_SSH_COMMAND"] = shlex.join(command)
        return env

    def secrets(self) -> list[str]:
        found = []
        if self.token is not None and self.token.get_secret_value():
            found.append(self.token.get_secret_value())
        basic = self._basic()
        if basic is not None:
            found.append(basic)
        return found

    def redact(self, text: str) -> str:
        """`text` without any secret of these credentials and without URL userinfo."""
        for secret in self.secrets():
            text = text.replace(secret, "***")
        return _USERINFO.sub(r"\g<scheme>***@", text)
