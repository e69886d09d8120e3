"""Run the `git` CLI as an asyncio subprocess, with credentials and redacted errors."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from pathlib import Path

from mlplane_deployer.gitops.credentials import GitCredentials

DEFAULT_TIMEOUT_S = 120.0


class GitFailed(Exception):
    """A git command exited non-zero; `stderr` is already redacted."""

    def __init__(self, command: str, returncode: int, stderr: str) -> None:
        super().__init__(f"git {command} exited {returncode}: {stderr.strip()[-2000:]}")
        self.command = command
        self.returncode = returncode
        self.stderr = stderr


@dataclass(frozen=True, slots=True)
class Author:
    name: str = "mlplane deployer"
    email: str = "deployer@mlplane.invalid"


@dataclass(slots=True)
class Git:
    """git in one working directory, with these credentials and this author."""

    cwd: Path
    credentials: GitCredentials = field(default_factory=GitCredentials)
    author: Author = field(default_factory=Author)
    timeout_s: float = DEFAULT_TIMEOUT_S

    def _environment(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("GIT_", "SSH_ASKPASS"))
        }
        env |= self.credentials.environment()
        env |= {
            "GIT_AUTHOR_NAME": self.author.name,
            "GIT_AUTHOR_EMAIL": self.author.email,
            "GIT_COMMITTER_NAME": self.author.name,
            "GIT_COMMITTER_EMAIL": self.author.email,
            "LC_ALL": "C",  # messages we match on (push rejections) are in English
        }
        return env

    async def run(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        """Run `git <args>` and return stdout.

        Raises `GitFailed` (stderr redacted) on a non-zero exit when `check`, and
        on a timeout (the process is killed).
        """
        process = await asyncio.create_subprocess_exec(
            "git",
            *args,
            cwd=self.cwd,
            env=self._environment(),
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(
                process.communicate(stdin.encode() if stdin is not None else None),
                self.timeout_s,
            )
        except TimeoutError:
            process.kill()
            await process.wait()
            raise GitFailed(args[0], -1, f"timed out after {self.timeout_s}s") from None
        if check and process.returncode != 0:
            raise GitFailed(
                args[0],
                process.returncode or -1,
                self.credentials.redact(err.decode(errors="replace")),
            )
        return out.decode(errors="replace")

    async def succeeds(self, *args: str) -> bool:
        try:
            await self.run(*args)
        except GitFailed:
            return False
        return True
