"""The pieces a session with many GPUs is built from, each on its own: --gpus parsing
(cockpit.rules.gpus), the duplicate guard (cockpit.rules.dedupe) and a commit made on the
incumbent without touching the checkout (cockpit.store.repo ``commit_on``)."""

import subprocess

import pytest

from cockpit.rules.dedupe import TriedPrograms, fingerprint
from cockpit.rules.gpus import GpuSpec, GpuSpecError, parse_gpus
from cockpit.store.repo import GitRepo, RepoError, init_repo

TRAIN = '"""Train."""\nimport torch\nSEED = 42\nLR = 0.04  # matrix lr\ntorch.manual_seed(SEED)\n'


@pytest.mark.parametrize("text, spec", [
    ("1", GpuSpec(1)), ("8", GpuSpec(8)), (" 4 ", GpuSpec(4)), ("all", GpuSpec(None)), ("ALL", GpuSpec(None)),
    ("0,2,5", GpuSpec(3, (0, 2, 5))), ("2,", GpuSpec(1, (2,))), ("3, 1", GpuSpec(2, (3, 1))),
])
def test_gpus_forms(text, spec):
    assert parse_gpus(text) == spec
    assert str(parse_gpus(str(spec))) == str(spec)  # what it prints parses back to itself


@pytest.mark.parametrize("text, words", [
    ("0", "1 or more"), ("-2", "expected a number"), ("two", "expected a number"), ("", "expected a number"),
    ("1,1", "listed twice"), ("0,x", "device indices"), (",", "device indices"), ("1.5", "expected a number"),
])
def test_gpus_refusals_say_what_is_accepted(text, words):
    with pytest.raises(GpuSpecError, match=words):
        parse_gpus(text)


def test_only_one_gpu_without_a_list_is_the_local_path():
    assert parse_gpus("1").local
    assert not parse_gpus("2").local and not parse_gpus("all").local and not parse_gpus("0,").local


def test_gpus_resolve_against_the_cluster():
    assert parse_gpus("all").resolve(8) == 8
    assert parse_gpus("4").resolve(8) == 4
    assert parse_gpus("0,2,5").resolve(8) == 3
    with pytest.raises(GpuSpecError, match="has 2 GPU"):
        parse_gpus("4").resolve(2)
    with pytest.raises(GpuSpecError, match="indices 0..3"):
        parse_gpus("1,4").resolve(4)
    with pytest.raises(GpuSpecError, match="no GPU"):
        parse_gpus("all").resolve(0)


@pytest.mark.parametrize("same", [
    TRAIN.replace("# matrix lr", "# the Muon rate"),            # a comment
    TRAIN.replace("LR = 0.04", "LR  =  0.04"),                  # formatting
    TRAIN.replace('"""Train."""', '"""Train a GPT."""'),         # the docstring
    TRAIN.replace("SEED = 42", "SEED = 7"),                      # a seed
    TRAIN.replace("LR = 0.04", "LR = 4e-2"),                     # the spelling of a literal
])
def test_the_same_program_has_one_fingerprint(same):
    assert fingerprint(same) == fingerprint(TRAIN)


@pytest.mark.parametrize("other", [TRAIN.replace("0.04", "0.05"), TRAIN + "DEPTH = 4\n", "def broken(:\n"])
def test_a_different_program_has_another(other):
    assert fingerprint(other) != fingerprint(TRAIN)


def test_tried_programs_refuse_what_is_in_flight_or_tried():
    tried = TriedPrograms()
    assert tried.refusal(TRAIN) is None
    tried.started(TRAIN, 12)
    assert tried.refusal(TRAIN.replace("SEED = 42", "SEED = 1")) == "the same train.py is in flight as #12"
    other = TRAIN.replace("0.04", "0.08")
    tried.started(other, 13)
    assert tried.in_flight() == [12, 13]
    tried.ended(TRAIN, 12)
    assert tried.refusal(TRAIN) == "the same train.py was tried as #12"
    assert tried.in_flight() == [13]


def git(path, *argv):
    return subprocess.run(["git", "-C", str(path), *argv], capture_output=True, text=True, check=True).stdout.strip()


def test_commit_on_the_incumbent_leaves_head_index_worktree_and_branches(tmp_path):
    (tmp_path / "train.py").write_text("LR = 0.04\n")
    (tmp_path / "prepare.py").write_text("FIXED = 1\n")
    base = init_repo(tmp_path, ["train.py", "prepare.py"], "baseline")
    repo = GitRepo(tmp_path)
    first = repo.commit_on(base, "train.py", b"LR = 0.08\n", "LR 0.04 -> 0.08")
    second = repo.commit_on(base, "train.py", b"LR = 0.02\n", "LR 0.04 -> 0.02")
    for commit, text in ((first, "LR = 0.08"), (second, "LR = 0.02")):
        assert git(tmp_path, "log", "-1", "--format=%P|%an|%s", commit).split("|")[:2] == [base, "cockpit"]
        assert repo.show_file(commit, "train.py") == text
        assert repo.show_file(commit, "prepare.py") == "FIXED = 1"  # the rest of the tree is the parent's
    assert repo.head_commit() == base and git(tmp_path, "rev-parse", "main") == base
    assert (tmp_path / "train.py").read_text() == "LR = 0.04\n"
    assert git(tmp_path, "status", "--porcelain") == ""
    assert not list((tmp_path / ".git").glob("cockpit-index-*"))  # the private index is gone
    repo.reset_hard(first)  # a keep moves the branch onto it
    assert git(tmp_path, "rev-parse", "main") == first and (tmp_path / "train.py").read_text() == "LR = 0.08\n"


def test_commit_on_an_unknown_parent_is_a_repo_error(tmp_path):
    (tmp_path / "train.py").write_text("LR = 0.04\n")
    init_repo(tmp_path, ["train.py"], "baseline")
    with pytest.raises(RepoError, match="cannot commit train.py on 0000000"):
        GitRepo(tmp_path).commit_on("0" * 40, "train.py", b"LR = 1\n", "x")
