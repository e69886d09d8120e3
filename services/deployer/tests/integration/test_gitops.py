"""The GitOps repository against real git: a bare repository as remote, clones, races."""

from __future__ import annotations

import asyncio
import http.server
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlplane_deployer.domain.errors import ChangeNotFound, GitOpsConflict, GitOpsUnavailable
from mlplane_deployer.gitops.credentials import GitCredentials
from mlplane_deployer.gitops.git import Author
from mlplane_deployer.gitops.message import ChangeAction, DeploymentChange, parse_trailers
from mlplane_deployer.gitops.repository import GitOpsRepository
from mlplane_deployer.render.tree import render
from pydantic import SecretStr

from ..support import digest, spec


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=60
    ).stdout


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    bare = tmp_path / "gitops.git"
    subprocess.run(
        ["git", "init", "--quiet", "--bare", "--initial-branch", "main", str(bare)], check=True
    )
    return bare


def replica(remote: Path, tmp_path: Path) -> GitOpsRepository:
    return GitOpsRepository(str(remote), tmp_path / f"clone-{uuid.uuid4().hex[:8]}")


def change(
    s_team: str,
    s_model: str,
    environment: str,
    directory: str,
    *,
    version: int = 8,
    action: ChangeAction = ChangeAction.DEPLOY,
    change_id: str | None = None,
) -> DeploymentChange:
    return DeploymentChange(
        change_id=change_id or str(uuid.uuid4()),
        action=action,
        team=s_team,
        model=s_model,
        version=version,
        digest=digest("a"),
        environment=environment,
        directory=directory,
        requested_by="alice",
        approvals=("bob", "carol"),
        policy_version=3,
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
    )


def commits(remote: Path, *path: str) -> list[str]:
    return git(remote, "log", "--format=%H", "main", "--", *path).split()


def deploy_args(
    version: int = 8, seed: str = "a", **kwargs: object
) -> tuple[DeploymentChange, dict[str, bytes]]:
    s = spec(version=version, seed=seed, **kwargs)  # type: ignore[arg-type]
    tree = render(s)
    return change(s.team, s.model, s.environment, s.directory, version=version), tree.files


class TestApply:
    async def test_first_change_creates_the_branch_with_a_structured_commit(
        self, remote: Path, tmp_path: Path
    ) -> None:
        repo = replica(remote, tmp_path)
        c, files = deploy_args()
        result = await repo.apply(c, files)
        assert result.created
        assert commits(remote) == [result.sha]
        trailers = parse_trailers(git(remote, "log", "-1", "--format=%B", result.sha))
        assert trailers["Mlplane-Model"] == c.model
        assert trailers["Mlplane-Version"] == "8"
        assert trailers["Mlplane-Digest"] == digest("a")
        assert trailers["Mlplane-Environment"] == "dev"
        assert trailers["Mlplane-Requested-By"] == "alice"
        assert trailers["Mlplane-Approved-By"] == "bob, carol"
        assert trailers["Mlplane-Policy-Version"] == "3"
        assert trailers["Mlplane-Trace-Id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
        assert trailers["Mlplane-Change-Id"] == c.change_id
        listed = set(git(remote, "ls-tree", "-r", "--name-only", "main").split())
        assert listed == set(files)

    async def test_git_reads_the_same_trailers(self, remote: Path, tmp_path: Path) -> None:
        c, files = deploy_args()
        result = await replica(remote, tmp_path).apply(c, files)
        parsed = git(
            remote, "log", "-1", "--format=%(trailers:key=Mlplane-Version,valueonly)", result.sha
        )
        assert parsed.strip() == "8"

    async def test_the_same_change_twice_is_one_commit(self, remote: Path, tmp_path: Path) -> None:
        c, files = deploy_args()
        first = await replica(remote, tmp_path).apply(c, files)
        again = await replica(remote, tmp_path).apply(c, files)  # another replica, fresh clone
        assert (first.created, again.created) == (True, False)
        assert again.sha == first.sha
        assert len(commits(remote)) == 1

    async def test_unchanged_content_makes_no_commit(self, remote: Path, tmp_path: Path) -> None:
        repo = replica(remote, tmp_path)
        c, files = deploy_args()
        first = await repo.apply(c, files)
        other = (
            DeploymentChange(**{**c.__dict__, "change_id": str(uuid.uuid4())})
            if False
            else change(c.team, c.model, c.environment, c.directory)
        )
        second = await repo.apply(other, files)
        assert not second.created
        assert second.sha == first.sha

    async def test_files_no_longer_rendered_are_removed(self, remote: Path, tmp_path: Path) -> None:
        repo = replica(remote, tmp_path)
        s = spec(canary_weight=10)
        c = change(s.team, s.model, s.environment, s.directory)
        await repo.apply(c, render(s).files)
        promoted = spec(team=s.team, model=s.model)
        await repo.apply(change(s.team, s.model, "dev", s.directory), render(promoted).files)
        listed = set(git(remote, "ls-tree", "-r", "--name-only", "main").split())
        assert listed == set(render(promoted).files)
        assert not any("canary" in path for path in listed)

    async def test_a_file_outside_the_change_directory_is_refused(
        self, remote: Path, tmp_path: Path
    ) -> None:
        c, _ = deploy_args()
        with pytest.raises(ValueError, match="outside"):
            await replica(remote, tmp_path).apply(c, {"teams/other/x.yaml": b"x"})
        with pytest.raises(ValueError, match="inside the repository"):
            await replica(remote, tmp_path).apply(c, {f"{c.directory}/../../escape.yaml": b"x"})


class TestConcurrentDeployments:
    async def test_ten_writers_each_change_lands_exactly_once(
        self, remote: Path, tmp_path: Path
    ) -> None:
        seed = await replica(remote, tmp_path).apply(*deploy_args())
        assert seed.created
        writers = [replica(remote, tmp_path) for _ in range(10)]
        changes = [deploy_args() for _ in writers]
        # Every change is sent by two writers at once, as a redelivered event would be.
        started = time.monotonic()
        results = await asyncio.gather(
            *(w.apply(*changes[i]) for i, w in enumerate(writers)),
            *(w.apply(*changes[(i + 1) % 10]) for i, w in enumerate(writers)),
        )
        elapsed = time.monotonic() - started
        assert elapsed < 120
        log = git(remote, "log", "--format=%B%x00", "main").split("\x00")
        ids = [parse_trailers(m).get("Mlplane-Change-Id") for m in log if m.strip()]
        for c, _ in changes:
            assert ids.count(c.change_id) == 1
        assert len(commits(remote)) == 11
        # Each change is reported created by at least one of its two writers. Under heavy
        # load both have been seen to report it (one commit landed: checked above); the
        # deployer never races itself on one change (its job is claimed by one worker).
        firsts, seconds = results[:10], results[10:]
        for i in range(10):
            assert firsts[i].created or seconds[(i - 1) % 10].created, i
        assert sum(r.rebases for r in results) > 0  # pushes were rejected and rebased
        assert git(remote, "fsck", "--no-progress", "--no-dangling").strip() == ""

    async def test_racing_changes_to_one_environment_both_land(
        self, remote: Path, tmp_path: Path
    ) -> None:
        s7 = spec(version=7, seed="b")
        s8 = spec(team=s7.team, model=s7.model, version=8, seed="a")
        c7 = change(s7.team, s7.model, "dev", s7.directory, version=7)
        c8 = change(s7.team, s7.model, "dev", s7.directory, version=8)
        r7, r8 = await asyncio.gather(
            replica(remote, tmp_path).apply(c7, render(s7).files),
            replica(remote, tmp_path).apply(c8, render(s8).files),
        )
        assert r7.created
        assert r8.created
        assert len(commits(remote)) == 2
        last = parse_trailers(git(remote, "log", "-1", "--format=%B", "main"))["Mlplane-Version"]
        deployment = git(remote, "show", f"main:{s7.directory}/base/deployment.yaml")
        assert (digest("a") in deployment) == (last == "8")


class TestAfterItsOwnPush:
    """A clone that pushed the tip it tracks lands the next change without fetching first;
    these are the cases where the remote moved meanwhile."""

    async def test_a_change_another_replica_landed_meanwhile_is_not_landed_twice(
        self, remote: Path, tmp_path: Path
    ) -> None:
        a, b = replica(remote, tmp_path), replica(remote, tmp_path)
        # Replicas in one second would make the very same commit; these are told apart.
        b.author = Author("mlplane deployer", "replica-b@mlplane.invalid")
        await a.apply(*deploy_args(seed="a"))  # a's clone now stands at the tip it pushed
        c, files = deploy_args(seed="b")
        landed_by_b = await b.apply(c, files)
        again_by_a = await a.apply(c, files)
        assert (landed_by_b.created, again_by_a.created) == (True, False)
        assert again_by_a.sha == landed_by_b.sha
        assert len(commits(remote)) == 2

    async def test_a_change_after_another_replicas_commit_lands_on_top_of_it(
        self, remote: Path, tmp_path: Path
    ) -> None:
        a, b = replica(remote, tmp_path), replica(remote, tmp_path)
        await a.apply(*deploy_args(seed="a"))
        s_other = spec(seed="b", model="other")
        by_b = await b.apply(
            change(s_other.team, s_other.model, "dev", s_other.directory), render(s_other).files
        )
        s_mine = spec(seed="c", model="mine")
        by_a = await a.apply(
            change(s_mine.team, s_mine.model, "dev", s_mine.directory), render(s_mine).files
        )
        assert by_a.created
        assert (by_a.attempts, by_a.rebases) == (2, 1)  # refused once, rebased, landed
        assert commits(remote)[:2] == [by_a.sha, by_b.sha]
        listed = set(git(remote, "ls-tree", "-r", "--name-only", "main").split())
        assert set(render(s_other).files) <= listed
        assert set(render(s_mine).files) <= listed

    async def test_a_remote_rewound_behind_the_clone_is_not_written_over(
        self, remote: Path, tmp_path: Path
    ) -> None:
        """The push is a swap on the tip the commit was made on, not a fast-forward check:
        a branch an operator reset is seen, not silently extended from the old tip."""
        a = replica(remote, tmp_path)
        first = await a.apply(*deploy_args(seed="a"))
        second = await a.apply(*deploy_args(seed="b"))
        git(remote, "update-ref", "refs/heads/main", first.sha)  # rewound by an operator
        third = await a.apply(*deploy_args(seed="c"))
        assert third.created
        history = commits(remote)
        assert second.sha not in history
        assert history[1] == first.sha


class TestPushFailures:
    async def test_a_push_the_remote_declines_is_unavailable_without_retrying(
        self, remote: Path, tmp_path: Path
    ) -> None:
        hook = remote / "hooks" / "pre-receive"
        hook.write_text("#!/bin/sh\necho 'protected branch' >&2\nexit 1\n")
        hook.chmod(0o755)
        c, files = deploy_args()
        started = time.monotonic()
        with pytest.raises(GitOpsUnavailable, match="protected branch"):
            await replica(remote, tmp_path).apply(c, files)
        assert time.monotonic() - started < 10

    async def test_rejections_past_the_attempt_limit_are_unavailable(
        self, remote: Path, tmp_path: Path
    ) -> None:
        await replica(remote, tmp_path).apply(*deploy_args())
        repo = replica(remote, tmp_path)
        repo.max_attempts = 1
        racer = replica(remote, tmp_path)
        c, files = deploy_args()
        original = repo._fetch
        calls = 0

        async def fetch_then_race() -> bool:
            # Another replica lands a change between our fetch and our push, every time.
            nonlocal calls
            calls += 1
            fetched = await original()
            if calls == 2:
                await racer.apply(*deploy_args())
            return fetched

        repo._fetch = fetch_then_race  # type: ignore[method-assign]
        with pytest.raises(GitOpsUnavailable, match="not pushed"):
            await repo.apply(c, files)


class TestRevert:
    async def test_rollback_is_a_revert_commit_restoring_the_previous_version(
        self, remote: Path, tmp_path: Path
    ) -> None:
        repo = replica(remote, tmp_path)
        s7 = spec(version=7, seed="b")
        s8 = spec(team=s7.team, model=s7.model, version=8, seed="a")
        await repo.apply(
            change(s7.team, s7.model, "dev", s7.directory, version=7), render(s7).files
        )
        c8 = change(s7.team, s7.model, "dev", s7.directory, version=8)
        deployed = await repo.apply(c8, render(s8).files)
        rollback = change(
            s7.team, s7.model, "dev", s7.directory, version=7, action=ChangeAction.ROLLBACK
        )
        reverted = await repo.revert(rollback, c8.change_id)
        assert reverted.created
        trailers = parse_trailers(git(remote, "log", "-1", "--format=%B", "main"))
        assert trailers["Mlplane-Action"] == "rollback"
        assert trailers["Mlplane-Reverts"] == deployed.sha
        for path, content in render(s7).files.items():
            assert git(remote, "show", f"main:{path}").encode() == content
        again = await replica(remote, tmp_path).revert(rollback, c8.change_id)
        assert (again.created, again.sha) == (False, reverted.sha)

    async def test_a_canarys_steps_are_reverted_together_in_one_commit(
        self, remote: Path, tmp_path: Path
    ) -> None:
        repo = replica(remote, tmp_path)
        s7 = spec(version=7, seed="b", gateway=True)
        team, model = s7.team, s7.model
        await repo.apply(change(team, model, "dev", s7.directory, version=7), render(s7).files)
        landed = []
        steps = [("deploy-x", 10), ("canary2-x", 50), ("canary3-x", None)]
        for change_id, weight in steps:
            s8 = spec(
                team=team, model=model, version=8, seed="a", canary_weight=weight, gateway=True
            )
            c8 = change(team, model, "dev", s7.directory, version=8, change_id=change_id)
            landed.append((await repo.apply(c8, render(s8).files)).sha)
        rollback = change(team, model, "dev", s7.directory, version=7, action=ChangeAction.ROLLBACK)
        reverted = await repo.revert(rollback, ["canary3-x", "canary2-x", "deploy-x", "canary4-x"])
        assert reverted.created
        assert len(commits(remote)) == 5  # v7, three steps, one revert
        trailers = parse_trailers(git(remote, "log", "-1", "--format=%B", "main"))
        assert trailers["Mlplane-Reverts"] == ", ".join(reversed(landed))
        for path, content in render(s7).files.items():
            assert git(remote, "show", f"main:{path}").encode() == content
        tree = git(remote, "ls-tree", "-r", "--name-only", "main", "--", s7.directory)
        assert sorted(tree.split()) == sorted(render(s7).files)

    async def test_reverting_the_first_commit_of_a_directory_removes_it(
        self, remote: Path, tmp_path: Path
    ) -> None:
        c, files = deploy_args()
        repo = replica(remote, tmp_path)
        await repo.apply(c, files)
        rollback = change(c.team, c.model, "dev", c.directory, action=ChangeAction.ROLLBACK)
        reverted = await repo.revert(rollback, c.change_id)
        assert reverted.created
        assert git(remote, "ls-tree", "-r", "--name-only", "main", "--", c.directory) == ""

    async def test_reverting_an_unknown_change_is_not_found(
        self, remote: Path, tmp_path: Path
    ) -> None:
        c, files = deploy_args()
        repo = replica(remote, tmp_path)
        await repo.apply(c, files)
        rollback = change(c.team, c.model, "dev", c.directory, action=ChangeAction.ROLLBACK)
        with pytest.raises(ChangeNotFound):
            await repo.revert(rollback, "no-such-change")

    async def test_revert_under_later_changes_is_a_conflict(
        self, remote: Path, tmp_path: Path
    ) -> None:
        repo = replica(remote, tmp_path)
        s7 = spec(version=7, seed="b")
        s8 = spec(team=s7.team, model=s7.model, version=8, seed="a")
        s9 = spec(team=s7.team, model=s7.model, version=9, seed="c")
        await repo.apply(
            change(s7.team, s7.model, "dev", s7.directory, version=7), render(s7).files
        )
        c8 = change(s7.team, s7.model, "dev", s7.directory, version=8)
        await repo.apply(c8, render(s8).files)
        await repo.apply(
            change(s7.team, s7.model, "dev", s7.directory, version=9), render(s9).files
        )
        rollback = change(s7.team, s7.model, "dev", s7.directory, action=ChangeAction.ROLLBACK)
        with pytest.raises(GitOpsConflict):
            await repo.revert(rollback, c8.change_id)
        # The clone is usable afterwards.
        s10 = spec(team=s7.team, model=s7.model, version=10, seed="d")
        result = await repo.apply(
            change(s7.team, s7.model, "dev", s7.directory, version=10), render(s10).files
        )
        assert result.created


class _RecordingHandler(http.server.BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []

    def do_GET(self) -> None:
        type(self).seen.append({"path": self.path, **dict(self.headers.items())})
        self.send_response(403)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_remote() -> Iterator[tuple[str, type[_RecordingHandler]]]:
    handler = type("Handler", (_RecordingHandler,), {"seen": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/gitops.git", handler
    finally:
        server.shutdown()
        server.server_close()


class TestCredentials:
    async def test_token_reaches_the_remote_as_a_header_and_never_an_error(
        self,
        tmp_path: Path,
        http_remote: tuple[str, type[_RecordingHandler]],
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        url, handler = http_remote
        token = f"tok-{uuid.uuid4().hex}"
        repo = GitOpsRepository(
            url.replace("http://", "http://deployer:hunter2@"),
            tmp_path / "clone",
            credentials=GitCredentials(username="deployer", token=SecretStr(token)),
        )
        with pytest.raises(GitOpsUnavailable) as raised:
            await repo.open()
        assert any(h.get("Authorization", "").startswith("Basic ") for h in handler.seen)
        text = str(raised.value) + repr(raised.value.extensions) + caplog.text
        assert token not in text
        assert "hunter2" not in text

    async def test_unreachable_remote_is_unavailable(self, tmp_path: Path) -> None:
        repo = GitOpsRepository("http://127.0.0.1:9/none.git", tmp_path / "clone")
        with pytest.raises(GitOpsUnavailable):
            await repo.open()

    def test_ssh_key_is_given_to_ssh_with_strict_host_keys(self, tmp_path: Path) -> None:
        env = GitCredentials(
            ssh_key_file=tmp_path / "id ed25519", known_hosts_file=tmp_path / "known_hosts"
        ).environment()
        assert "StrictHostKeyChecking=yes" in env["GIT_SSH_COMMAND"]
        assert f"'{tmp_path / 'id ed25519'}'" in env["GIT_SSH_COMMAND"]
        assert env["GIT_TERMINAL_PROMPT"] == "0"
