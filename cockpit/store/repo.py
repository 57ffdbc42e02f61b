"""The workspace's git repository, through GitPython.

Every operation opens the repository in a ``with Repo(...)`` block so its
``git cat-file`` helper processes are closed again. Commits carry an explicit
author and committer ("cockpit <cockpit@localhost>") so they work on a machine
with no git identity. Git failures surface as ``RepoError`` with a clear message.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Iterable
from uuid import uuid4

from git import Actor, Repo
from gitdb import IStream
from git.exc import GitCommandError, InvalidGitRepositoryError, NoSuchPathError

COCKPIT_ACTOR = Actor("cockpit", "cockpit@localhost")
SHORT = 7  # characters of a short commit hash


# git configuration forced on every git command cockpit runs (like ``git -c``, above
# every config file): no hooks, no fsmonitor command (cockpit.training.run_guard says why)
SAFE_GIT_CONFIG = (("core.hooksPath", "/dev/null"), ("core.fsmonitor", "false"))


def safe_git_env() -> dict[str, str]:
    """GIT_CONFIG_COUNT / GIT_CONFIG_KEY_n / GIT_CONFIG_VALUE_n (git >= 2.31) for
    SAFE_GIT_CONFIG, after any the environment sets already."""
    try:
        start = int(os.environ.get("GIT_CONFIG_COUNT", "0"))
    except ValueError:
        start = 0
    env = {"GIT_CONFIG_COUNT": str(start + len(SAFE_GIT_CONFIG))}
    for i, (key, value) in enumerate(SAFE_GIT_CONFIG, start=start):
        env[f"GIT_CONFIG_KEY_{i}"], env[f"GIT_CONFIG_VALUE_{i}"] = key, value
    return env


class RepoError(RuntimeError):
    """A git operation failed or was refused; the message says what to do."""


class BranchExistsError(RepoError):
    """The run branch already exists (a session tag must be new)."""


def short(hexsha: str) -> str:
    """The 7-character short form of a commit hash."""
    return hexsha[:SHORT]


def init_repo(path: str | os.PathLike, files: Iterable[str], message: str) -> str:
    """``git init`` (branch main) at ``path`` and commit ``files`` (relative paths).

    Returns the commit's full hash.
    """
    with Repo.init(path, initial_branch="main") as repo:
        repo.index.add(list(files))
        commit = repo.index.commit(message, author=COCKPIT_ACTOR, committer=COCKPIT_ACTOR)
        return commit.hexsha


class GitRepo:
    """Operations on the repository at ``path`` (the workspace root)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def _open(self) -> Repo:
        try:
            repo = Repo(self.path)
        except (InvalidGitRepositoryError, NoSuchPathError):
            raise RepoError(f"{self.path} is not a git repository") from None
        repo.git.update_environment(**safe_git_env())
        return repo

    def head_commit(self) -> str:
        """Full hash of HEAD. Raises RepoError when the repository has no commit."""
        with self._open() as repo:
            if not repo.head.is_valid():
                raise RepoError(f"{self.path} has no commit yet")
            return repo.head.commit.hexsha

    def current_branch(self) -> str | None:
        """Name of the checked-out branch, or None when HEAD is detached."""
        with self._open() as repo:
            return None if repo.head.is_detached else repo.active_branch.name

    def branch_exists(self, name: str) -> bool:
        """True when a local branch ``name`` exists."""
        with self._open() as repo:
            return any(head.name == name for head in repo.heads)

    def refuse_existing_branch(self, name: str) -> None:
        """Raise BranchExistsError (with what to do) when branch ``name`` exists."""
        if self.branch_exists(name):
            raise BranchExistsError(
                f"branch {name} already exists; choose another tag (--tag) or delete it "
                f"with `git branch -D {name}`"
            )

    def create_branch(self, name: str) -> str:
        """Create branch ``name`` at HEAD and check it out; returns HEAD's full hash.

        Raises BranchExistsError when it exists, RepoError when HEAD has no commit.
        """
        self.refuse_existing_branch(name)
        start = self.head_commit()
        with self._open() as repo:
            try:
                repo.create_head(name, start).checkout()
            except GitCommandError as exc:
                raise RepoError(f"cannot check out {name}: {exc.stderr.strip()}") from None
        return start

    def branches(self, prefix: str = "") -> list[str]:
        """Names of the local branches that start with ``prefix``, sorted."""
        with self._open() as repo:
            return sorted(head.name for head in repo.heads if head.name.startswith(prefix))

    def checkout_branch(self, name: str) -> str:
        """Check out the existing branch ``name`` (a resumed session's); returns its head's
        full hash. Raises RepoError when it is missing or cannot be checked out."""
        with self._open() as repo:
            if not any(head.name == name for head in repo.heads):
                raise RepoError(f"branch {name} does not exist")
            try:
                repo.heads[name].checkout()
            except GitCommandError as exc:
                raise RepoError(f"cannot check out {name}: {exc.stderr.strip()}") from None
            return repo.heads[name].commit.hexsha

    def full_hash(self, commit: str) -> str:
        """The full hash of ``commit`` (a short hash as results.tsv holds it); ``commit``
        itself when git does not know it."""
        with self._open() as repo:
            try:
                return repo.commit(commit).hexsha
            except (ValueError, GitCommandError, Exception):  # gitdb's BadName among them
                return commit

    def commit_file(self, relpath: str, message: str) -> str:
        """Stage ``relpath`` (as it is on disk) and commit it; returns the full hash."""
        with self._open() as repo:
            repo.index.add([relpath])
            commit = repo.index.commit(message, author=COCKPIT_ACTOR, committer=COCKPIT_ACTOR, skip_hooks=True)
            return commit.hexsha

    def commit_on(self, parent: str, relpath: str, content: bytes, message: str) -> str:
        """A commit whose only parent is ``parent`` and whose tree is ``parent``'s with
        ``relpath`` holding ``content``, made without touching HEAD, the index, the
        working tree or any branch (the blob through GitPython's object database,
        then read-tree into a private index, update-index, write-tree, commit-tree).
        For experiments trained side by side,
        each on the incumbent it was proposed against; a keep then moves the branch
        onto it (``move_branch``/``reset_hard``). Returns its full hash; RepoError
        when git refuses."""
        author = {"GIT_AUTHOR_NAME": COCKPIT_ACTOR.name, "GIT_AUTHOR_EMAIL": COCKPIT_ACTOR.email,
                  "GIT_COMMITTER_NAME": COCKPIT_ACTOR.name, "GIT_COMMITTER_EMAIL": COCKPIT_ACTOR.email}
        with self._open() as repo:
            index = Path(repo.git_dir) / f"cockpit-index-{os.getpid()}-{uuid4().hex[:8]}"
            try:
                with repo.git.custom_environment(GIT_INDEX_FILE=str(index), **author):
                    sha = repo.odb.store(IStream("blob", len(content), io.BytesIO(content))).hexsha
                    blob = sha.decode() if isinstance(sha, bytes) else sha
                    repo.git.read_tree(parent)
                    repo.git.update_index("--add", "--cacheinfo", f"100644,{blob},{relpath}")
                    tree = repo.git.write_tree()
                    return repo.git.commit_tree(tree, "-p", parent, "-m", message)
            except GitCommandError as exc:
                raise RepoError(f"cannot commit {relpath} on {short(parent)}: {exc.stderr.strip()}") from None
            finally:
                index.unlink(missing_ok=True)

    def reset_hard(self, commit: str, preserve: Iterable[str] = ()) -> None:
        """``git reset --hard commit`` on the current branch.

        Files named in ``preserve`` (relative paths, e.g. program.md being edited by
        the human) keep their working-tree content across the reset.
        """
        saved = {}
        for rel in preserve:
            file = self.path / rel
            if file.is_file():
                saved[rel] = file.read_bytes()
        with self._open() as repo:
            try:
                repo.head.reset(commit, index=True, working_tree=True)
            except GitCommandError as exc:
                raise RepoError(f"git reset --hard {short(commit)} failed: {exc.stderr.strip()}") from None
        for rel, data in saved.items():
            if (self.path / rel).read_bytes() != data:
                (self.path / rel).write_bytes(data)

    def diff(self, old: str, new: str, relpath: str = "train.py") -> str:
        """Unified diff text of ``relpath`` between commits ``old`` and ``new``."""
        with self._open() as repo:
            return repo.git.diff("--no-ext-diff", "--no-textconv", old, new, "--", relpath)

    def diff_worktree(self, relpath: str = "train.py") -> str:
        """Unified diff text of ``relpath``: HEAD -> working tree ("" when unchanged)."""
        with self._open() as repo:
            return repo.git.diff("--no-ext-diff", "--no-textconv", "HEAD", "--", relpath)

    def is_dirty(self, paths: Iterable[str] = ()) -> bool:
        """True when tracked files (only ``paths`` if given) differ from HEAD
        (staged or not); untracked files do not count."""
        with self._open() as repo:
            targets = list(paths) or [None]
            return any(repo.is_dirty(index=True, working_tree=True, path=p) for p in targets)

    def show_file(self, commit: str, relpath: str) -> str:
        """Text of ``relpath`` as committed in ``commit``."""
        with self._open() as repo:
            return repo.git.show(f"{commit}:{relpath}")

    def exclude(self, names: Iterable[str]) -> list[str]:
        """Append each of ``names`` (e.g. ``results.tsv``, ``logs/``) that git does not
        ignore yet to the repository's ``info/exclude``; returns the names added."""
        added = []
        with self._open() as repo:
            for name in names:
                try:
                    repo.git.check_ignore("-q", "--no-index", name)
                except GitCommandError as exc:
                    if exc.status != 1:
                        raise RepoError(f"git check-ignore {name} failed: {exc.stderr.strip()}") from None
                    added.append(name)
            if added:
                path = Path(repo.git.rev_parse("--git-path", "info/exclude"))
                path = path if path.is_absolute() else self.path / path
                path.parent.mkdir(parents=True, exist_ok=True)
                old = path.read_text(encoding="utf-8") if path.exists() else ""
                sep = "" if not old or old.endswith("\n") else "\n"
                path.write_text(old + sep + "".join(f"{n}\n" for n in added), encoding="utf-8")
        return added

    def branch_head(self, name: str) -> str:
        """Full hash of the commit branch ``name`` points at."""
        with self._open() as repo:
            return repo.heads[name].commit.hexsha

    def cockpit_made(self, old: str, new: str) -> bool:
        """True when ``old`` is an ancestor of ``new`` and every commit after it up to
        ``new`` was made by cockpit (its author, ``COCKPIT_ACTOR``)."""
        with self._open() as repo:
            if not repo.is_ancestor(old, new):
                return False
            return all(c.author.email == COCKPIT_ACTOR.email for c in repo.iter_commits(f"{old}..{new}"))

    def move_branch(self, name: str, commit: str) -> None:
        """Point branch ``name`` (not checked out) at ``commit`` (``git branch -f``)."""
        with self._open() as repo:
            try:
                repo.git.branch("-f", name, commit)
            except GitCommandError as exc:
                raise RepoError(f"git branch -f {name} {short(commit)} failed: {exc.stderr.strip()}") from None

    def log(self, ref: str = "HEAD") -> list[tuple[str, str]]:
        """(full hash, first message line) of the commits reachable from ``ref``, newest first."""
        with self._open() as repo:
            return [(c.hexsha, c.message.splitlines()[0] if c.message else "") for c in repo.iter_commits(ref)]
