"""The GitOps repository: one commit per deployment change, pushed, idempotent.

Each `GitOpsRepository` owns one working clone. A change is landed so:

1. fetch the branch; if a commit on it already carries the change's
   `Mlplane-Change-Id`, that commit is the answer (the same change twice is one
   commit, even when another replica landed it);
2. start from the remote's tip, apply the change (write the files, or revert a
   commit), and stop with no commit when nothing differs;
3. commit with the structured message and push; on a non-fast-forward, fetch
   and rebase the commit onto the new tip and push again; a rebase that
   conflicts is dropped and the change applied afresh on the new tip (step 1).

Within one process a lock serializes changes on the clone; across replicas the
remote decides, and the retries above make every change land exactly once.

When this clone pushed the tip it tracks and nothing has touched it since, step 1
and the reset of step 2 are skipped: every push is a compare-and-swap on the tip the
commit was made on (`--force-with-lease`), so if another replica moved the branch
meanwhile, the push is refused and the change goes the long way above. A push that
succeeds proves the remote was at that tip, which does not carry the change.
"""

from __future__ import annotations

import asyncio
import logging
import random
import shutil
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from mlplane_deployer.domain.errors import ChangeNotFound, GitOpsConflict, GitOpsUnavailable
from mlplane_deployer.gitops.credentials import GitCredentials
from mlplane_deployer.gitops.git import Author, Git, GitFailed
from mlplane_deployer.gitops.message import CHANGE_ID, ChangeAction, DeploymentChange

log = logging.getLogger(__name__)

_REJECTED = (
    "[rejected]",
    "non-fast-forward",
    "fetch first",
    "cannot lock ref",
    "failed to update ref",
)


@dataclass(frozen=True, slots=True)
class CommitResult:
    """`sha` of the commit carrying the change; `created` is False when it was there before
    (or nothing differed, then `sha` is the branch's tip). `attempts` counts pushes tried,
    `rebases` the times the commit was rebased onto a newer tip."""

    sha: str
    created: bool
    attempts: int = 0
    rebases: int = 0


class _PushRejected(Exception):
    pass


@dataclass
class GitOpsRepository:
    remote: str
    workdir: Path
    branch: str = "main"
    credentials: GitCredentials = field(default_factory=GitCredentials)
    author: Author = field(default_factory=Author)
    max_attempts: int = 20
    backoff_s: float = 0.05
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)
    _opened: bool = field(default=False, init=False, repr=False)
    # The tip this clone last pushed, while HEAD, the working tree and the tracking ref
    # all stand there untouched; None once anything may have moved one of them.
    _clean_tip: str | None = field(default=None, init=False, repr=False)
    # Counted per landing; the lock makes them this landing's alone.
    _pushes: int = field(default=0, init=False, repr=False)
    _rebases: int = field(default=0, init=False, repr=False)

    @property
    def _git(self) -> Git:
        return Git(self.workdir, self.credentials, self.author)

    @property
    def _tracking(self) -> str:
        return f"refs/remotes/origin/{self.branch}"

    # -- public -------------------------------------------------------------------------

    async def open(self) -> None:
        """Prepare the working clone; raises `GitOpsUnavailable` when the remote does not answer."""
        async with self._lock:
            await self._open()

    async def apply(self, change: DeploymentChange, files: Mapping[str, bytes]) -> CommitResult:
        """Make `change.directory` hold exactly `files` (paths relative to the repository).

        Raises `GitOpsUnavailable` when the remote cannot be reached or keeps
        rejecting pushes, `ValueError` for a file outside `change.directory`.
        """
        directory = _relative(change.directory)
        for path in files:
            if PurePosixPath(directory) not in PurePosixPath(_relative(path)).parents:
                raise ValueError(f"{path} is outside {change.directory}")

        async def write() -> None:
            target = self.workdir / directory
            if target.exists():
                shutil.rmtree(target)  # files no longer rendered must go too
            for path, content in files.items():
                file = self.workdir / _relative(path)
                file.parent.mkdir(parents=True, exist_ok=True)
                file.write_bytes(content)

        return await self._land(change, write, reverts=None)

    async def revert(
        self, change: DeploymentChange, of_change_id: str | Sequence[str]
    ) -> CommitResult:
        """Land `change` (a rollback) as one revert of every commit carrying one of the
        change ids (a canary's steps: each its own commit), newest first.

        Raises `ChangeNotFound` when no commit carries any of them, `GitOpsConflict`
        when later commits on the same files keep them from reverting cleanly, and
        `GitOpsUnavailable` as `apply` does.
        """
        if change.action is not ChangeAction.ROLLBACK:
            raise ValueError("a revert lands a rollback change")
        change_ids = [of_change_id] if isinstance(of_change_id, str) else list(of_change_id)
        target: list[str] = []

        async def undo() -> None:
            shas = await self._find_all(change_ids, change.directory)
            if not shas:
                raise ChangeNotFound(f"no GitOps commit carries change {', '.join(change_ids)}")
            target[:] = shas
            try:
                await self._git.run("revert", "--no-commit", "--no-edit", *shas)
            except GitFailed as exc:
                await self._git.run("revert", "--abort", check=False)
                await self._reset()
                raise GitOpsConflict(
                    f"change {change_ids[-1]} does not revert cleanly: later commits changed "
                    "the same files",
                    commit=shas[0],
                ) from exc

        return await self._land(change, undo, reverts=target)

    async def find(self, change_id: str, directory: str | None = None) -> str | None:
        """The commit on the remote branch carrying `change_id`, after a fetch."""
        async with self._lock:
            await self._open()
            await self._fetch()
            return await self._find(change_id, directory)

    async def unchanged_since(self, commit: str, later: str, directory: str) -> bool:
        """Whether `later` (a newer tip of the branch) holds `directory` exactly as `commit`
        left it: `commit` is its ancestor and no commit between touched `directory`.

        Argo CD reports the branch's tip; another model's commit moves the tip without
        changing this one. Raises `GitOpsUnavailable` when the remote does not answer.
        """
        async with self._lock:
            await self._open()
            git = self._git
            if not await git.succeeds("cat-file", "-e", f"{later}^{{commit}}"):
                await self._fetch()
            if not await git.succeeds("merge-base", "--is-ancestor", commit, later):
                return False
            between = await git.run(
                "rev-list", "--count", f"{commit}..{later}", "--", _relative(directory)
            )
            return between.strip() == "0"

    async def read(self, path: str) -> bytes | None:
        """A file as the remote branch holds it now, or None."""
        async with self._lock:
            await self._open()
            if not await self._fetch():
                return None
            git = self._git
            try:
                out = await git.run("show", f"{self._tracking}:{_relative(path)}")
            except GitFailed:
                return None
            return out.encode()

    # -- landing --------------------------------------------------------------------------

    async def _land(
        self,
        change: DeploymentChange,
        mutate: Callable[[], Awaitable[None]],
        reverts: list[str] | None,
    ) -> CommitResult:
        async with self._lock:
            await self._open()
            self._pushes = self._rebases = 0
            for attempt in range(1, self.max_attempts + 1):
                at_own_tip = attempt == 1 and self._clean_tip is not None
                # At its own tip the clone does not fetch: the push checks the tip still is.
                has_tip = True if at_own_tip else await self._fetch()
                existing = (
                    await self._find(change.change_id, change.directory, tip_known=at_own_tip)
                    if has_tip
                    else None
                )
                if existing is not None:
                    return self._result(existing, created=False)
                if self._clean_tip is None:
                    await self._reset()
                self._clean_tip = None  # mutated from here until a landing ends well
                await mutate()
                if (self.workdir / _relative(change.directory)).exists():
                    await self._git.run("add", "--all", "--", _relative(change.directory))
                # else: a revert of the first commit there removed it, already staged.
                if await self._git.succeeds("diff", "--cached", "--quiet"):
                    head = await self._head()
                    self._clean_tip = head if has_tip else None
                    return self._result(head, created=False)
                message = change.message(reverts=", ".join(reverts) if reverts else None)
                await self._git.run("commit", "--quiet", "--file", "-", stdin=message)
                try:
                    sha = await self._push_rebasing(change)
                except _PushRejected:
                    await asyncio.sleep(self._backoff(attempt))
                    continue
                if sha is None:  # the rebase emptied our commit: the content is there
                    head = await self._head()
                    self._clean_tip = head
                    return self._result(head, created=False)
                self._clean_tip = sha
                log.info(
                    "gitops change landed",
                    extra={"change_id": change.change_id, "commit": sha, "pushes": self._pushes},
                )
                return self._result(sha, created=True)
        raise GitOpsUnavailable(
            f"change {change.change_id} was not pushed after {self.max_attempts} attempts",
            change_id=change.change_id,
        )

    def _result(self, sha: str, *, created: bool) -> CommitResult:
        return CommitResult(sha, created, attempts=self._pushes, rebases=self._rebases)

    async def _push_rebasing(self, change: DeploymentChange) -> str | None:
        """Push HEAD; on a non-fast-forward, rebase onto the new tip and push again.

        Returns the pushed commit, or None when rebasing left nothing to push.
        Raises `_PushRejected` when the change must be applied afresh, and
        `GitOpsUnavailable` when the push fails otherwise or `max_attempts` pushes
        were rejected.
        """
        while self._pushes < self.max_attempts:
            self._pushes += 1
            # Only onto the tip the commit was made on (none: the branch must not exist).
            sha, _, base = (
                (await self._git.run("log", "-1", "--format=%H %P")).strip().partition(" ")
            )
            lease = f"--force-with-lease=refs/heads/{self.branch}:{base}"
            try:
                await self._git.run(
                    "push", "--quiet", lease, "origin", f"HEAD:refs/heads/{self.branch}"
                )
                return sha
            except GitFailed as exc:
                if not any(marker in exc.stderr for marker in _REJECTED):
                    raise GitOpsUnavailable(f"GitOps push failed: {exc}") from None
            await asyncio.sleep(self._backoff(self._pushes))
            await self._fetch()
            if await self._find(change.change_id, change.directory) is not None:
                raise _PushRejected  # another replica landed it; step 1 will find it
            # Our one commit alone: commits the remote no longer has stay gone.
            since = (base,) if base else ("--root",)
            if not await self._git.succeeds("rebase", "--quiet", "--onto", self._tracking, *since):
                await self._git.run("rebase", "--abort", check=False)
                raise _PushRejected
            self._rebases += 1
            if await self._head() == await self._tip():
                return None
        raise GitOpsUnavailable(
            f"change {change.change_id} was not pushed after {self._pushes} pushes",
            change_id=change.change_id,
        )

    # -- plumbing -------------------------------------------------------------------------

    async def _open(self) -> None:
        if self._opened:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        git = self._git
        if not (self.workdir / ".git").exists():
            await git.run("init", "--quiet", "--initial-branch", self.branch)
            await git.run("remote", "add", "origin", self.remote)
        await self._fetch()
        self._opened = True

    async def _fetch(self) -> bool:
        """Fetch the branch; False when the remote has no such branch yet."""
        self._clean_tip = None  # the tracking ref may move past HEAD
        git = self._git
        try:
            await git.run(
                "fetch",
                "--quiet",
                "--no-tags",
                "origin",
                f"+refs/heads/{self.branch}:{self._tracking}",
            )
        except GitFailed as exc:
            if "couldn't find remote ref" in exc.stderr:
                return False
            raise GitOpsUnavailable(f"GitOps fetch failed: {exc}") from None
        return True

    async def _reset(self) -> None:
        """Working tree and branch at the remote tip, or an empty unborn branch."""
        git = self._git
        if await git.succeeds("rev-parse", "--verify", "--quiet", self._tracking):
            await git.run("checkout", "--quiet", "--force", "-B", self.branch, self._tracking)
        else:
            # Nothing on the remote yet: an unborn branch with an empty index.
            await git.run("symbolic-ref", "HEAD", f"refs/heads/{self.branch}")
            await git.run("update-ref", "-d", f"refs/heads/{self.branch}", check=False)
            await git.run("rm", "-r", "--quiet", "--cached", "--ignore-unmatch", ".")
        await git.run("clean", "-fdxq")

    async def _find(
        self, change_id: str, directory: str | None, *, tip_known: bool = False
    ) -> str | None:
        git = self._git
        if not tip_known and not await git.succeeds(
            "rev-parse", "--verify", "--quiet", self._tracking
        ):
            return None
        args = [
            "log",
            "--format=%H",
            "--fixed-strings",
            f"--grep={CHANGE_ID}: {change_id}",
            self._tracking,
        ]
        if directory is not None:
            args += ["--", _relative(directory)]
        shas = (await git.run(*args)).split()
        return shas[0] if shas else None

    async def _find_all(self, change_ids: Sequence[str], directory: str) -> list[str]:
        """Every commit carrying one of `change_ids`, newest first."""
        git = self._git
        if not await git.succeeds("rev-parse", "--verify", "--quiet", self._tracking):
            return []
        greps = [f"--grep={CHANGE_ID}: {change_id}" for change_id in change_ids]
        args = ["log", "--format=%H", "--fixed-strings", *greps, self._tracking]
        return (await git.run(*args, "--", _relative(directory))).split()

    async def _head(self) -> str:
        return (await self._git.run("rev-parse", "HEAD")).strip()

    async def _tip(self) -> str:
        return (await self._git.run("rev-parse", self._tracking)).strip()

    def _backoff(self, attempt: int) -> float:
        return float(random.uniform(0, self.backoff_s * min(2**attempt, 32)))


def _relative(path: str) -> str:
    """A repository path that cannot escape the repository."""
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts:
        raise ValueError(f"{path!r} is not a path inside the repository")
    return str(pure)
