"""Hostile input, small refusals (issue 12): each ends in one clear line, never a
traceback, a hang or a corrupted state.

- ``--program`` naming a directory, a device or a FIFO says what the path is,
  and a program is never read past MAX_PROGRAM_BYTES;
- ``cockpit init DIR`` where DIR cannot be created says why in one line;
- the fallback socket directory (/tmp/cockpit-UID) is used only when it is ours;
- a torn last line of records.jsonl is set aside at start, a corrupt one in the
  middle refuses the session before anything trains.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from engine_support import make_workspace

from cockpit.store import programs
from cockpit.cli import main
from cockpit.store.programs import MAX_PROGRAM_BYTES, ProgramError, ProgramSource, resolve_program


def one_line(err: str) -> str:
    """The single stderr line of a refusal (asserts there is exactly one, and no traceback)."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# ------------------------------------------------------------- --program --


def test_a_program_path_that_is_a_directory_says_so(tmp_path):
    (tmp_path / "notes").mkdir()
    with pytest.raises(ProgramError) as refused:
        resolve_program("./notes", tmp_path)
    assert "is a directory, not a program file" in str(refused.value)
    assert "does not exist" not in str(refused.value)


def test_a_program_path_that_is_a_device_or_a_fifo_says_so(tmp_path):
    fifo = tmp_path / "pipe.md"
    os.mkfifo(fifo)
    for spec in ("/dev/zero", str(fifo)):
        with pytest.raises(ProgramError) as refused:
            resolve_program(spec, tmp_path)
        assert "is not a regular file (a device, FIFO or socket)" in str(refused.value), spec


def test_a_missing_program_path_still_says_it_does_not_exist(tmp_path):
    with pytest.raises(ProgramError, match="does not exist"):
        resolve_program("./nowhere.md", tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ProgramError, match="does not exist"):
        resolve_program("./file/below.md", tmp_path)  # a parent that is a file


def _read_in_thread(source: ProgramSource, seconds: float = 5.0):
    """``source.read()`` in a thread: (result or exception, finished in time)."""
    out: list = []

    def target():
        try:
            out.append(source.read())
        except Exception as exc:  # noqa: BLE001 - the test looks at it
            out.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    return (out[0] if out else None), not thread.is_alive()


def test_reading_a_program_that_became_a_fifo_does_not_wait_for_a_writer(tmp_path):
    # resolved as a file, then replaced by a FIFO before a proposal reads it again
    fifo = tmp_path / "program.md"
    os.mkfifo(fifo)
    result, finished = _read_in_thread(ProgramSource(path=fifo, shown="program.md"))
    if not finished:  # release the reader blocked in open() before failing
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    assert finished, "reading a FIFO program blocked"
    assert isinstance(result, ProgramError)
    assert str(result) == ("program.md is not a regular file (a device, FIFO or socket); "
                           "the program must be a text file")


def test_reading_a_program_directory_says_what_it_is(tmp_path):
    with pytest.raises(ProgramError, match="program.md is a directory, not a program file"):
        ProgramSource(path=tmp_path, shown="program.md").read()


def test_a_program_over_the_size_limit_is_refused_and_read_no_further(tmp_path, monkeypatch):
    path = tmp_path / "program.md"
    path.write_bytes(b"a" * MAX_PROGRAM_BYTES)
    assert len(ProgramSource(path=path).read().text) == MAX_PROGRAM_BYTES  # the limit itself is fine
    path.write_bytes(b"a" * (MAX_PROGRAM_BYTES + 1))
    with pytest.raises(ProgramError) as refused:
        ProgramSource(path=path, shown="program.md").read()
    assert str(refused.value) == "program.md is larger than 1 MiB, the limit of a program file; shorten it"

    # however large the file, no more than the limit + 1 bytes are asked for
    asked: list[int] = []
    real_fdopen = os.fdopen

    class Counting:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def fileno(self):
            return self.handle.fileno()

        def read(self, size=-1):
            asked.append(size)
            return self.handle.read(size)

    monkeypatch.setattr(programs.os, "fdopen", lambda fd, mode: Counting(real_fdopen(fd, mode)))
    path.write_bytes(b"a" * (4 * MAX_PROGRAM_BYTES))
    with pytest.raises(ProgramError, match="larger than 1 MiB"):
        ProgramSource(path=path).read()
    assert asked == [MAX_PROGRAM_BYTES + 1]


@pytest.mark.parametrize("what", ["directory", "device", "fifo"])
def test_the_cli_refuses_a_program_that_is_not_a_file_in_one_line(tmp_path, capsys, what):
    ws = make_workspace(tmp_path / "ws").path
    spec = {"directory": str(tmp_path), "device": "/dev/zero", "fifo": str(tmp_path / "pipe")}[what]
    if what == "fifo":
        os.mkfifo(spec)
    assert main(["--workspace", str(ws), "--program", spec, "--max-experiments", "1"]) == 1
    line = one_line(capsys.readouterr().err)
    assert line.startswith("cockpit: program ")
    assert ("is a directory" if what == "directory" else "is not a regular file") in line
    assert not (ws / "results.tsv").exists()  # nothing started


# ------------------------------------------------------------ cockpit init --


def _refused_init(capsys, target: Path, *extra: str) -> str:
    """``cockpit init target``: exit 1, and the one stderr line it printed."""
    assert main(["init", str(target), "--profile", "tiny", *extra]) == 1
    return one_line(capsys.readouterr().err)


def test_init_under_a_regular_file_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("not a directory\n")
    target = tmp_path / "file" / "ws"
    line = _refused_init(capsys, target, "--no-prepare")
    assert line == f"cockpit: cannot create workspace {target}: Not a directory"


def _read_only_location(tmp_path: Path) -> Path:
    """A directory path nobody here may create: under a 0555 directory, or (as root,
    whom modes do not stop) under /sys."""
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        return locked / "ws"
    target = Path(f"/sys/cockpit-test-{os.getpid()}")
    try:
        os.mkdir(target)
    except OSError:
        return target
    os.rmdir(target)
    pytest.skip("no location here refuses root's mkdir")


def test_init_on_a_read_only_location_is_one_line(tmp_path, capsys):
    target = _read_only_location(tmp_path)
    line = _refused_init(capsys, target, "--no-prepare")
    assert line.startswith(f"cockpit: cannot create workspace {target}: ")
    assert line.rsplit(": ", 1)[1] in ("Permission denied", "Operation not permitted", "Read-only file system")
    assert not target.exists()


def _disk_full_at(monkeypatch, name: str, method: str) -> None:
    """Make ``Path.<method>`` fail with ENOSPC (as a full disk does) for a path named ``name``."""
    import errno

    real = getattr(Path, method)

    def failing(self, *args, **kwargs):
        if self.name == name:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, method, failing)


@pytest.mark.parametrize("existing", [False, True], ids=["new directory", "empty directory"])
def test_init_on_a_full_disk_is_one_line_and_leaves_nothing_half_made(tmp_path, capsys, monkeypatch, existing):
    target = tmp_path / "parent" / "ws"
    if existing:
        target.mkdir(parents=True)
    with monkeypatch.context() as patched:
        _disk_full_at(patched, "train.py", "write_text")  # prepare.py is written, train.py is not
        line = _refused_init(capsys, target, "--no-prepare")
    assert line == f"cockpit: cannot create workspace {target}: No space left on device"
    if existing:
        assert target.is_dir() and not any(target.iterdir())  # empty again, as it was
    else:
        assert not (tmp_path / "parent").exists()  # the directories init made are gone too
    # the same command works once there is space again
    assert main(["init", str(target), "--profile", "tiny", "--no-prepare"]) == 0
    assert (target / "train.py").is_file()


def test_init_whose_prepare_cannot_write_its_log_is_one_line(tmp_path, capsys, monkeypatch):
    target = tmp_path / "ws"
    _disk_full_at(monkeypatch, "logs", "mkdir")
    assert main(["init", str(target), "--profile", "tiny"]) == 1
    captured = capsys.readouterr()
    assert f"created workspace {target}" in captured.out
    line = one_line(captured.err)
    assert line == (f"cockpit: prepare.py could not run in {target}: No space left on device; "
                    "run `python prepare.py` there once that is fixed")


# ------------------------------------------------- the fallback socket dir --


@pytest.fixture
def fallback(tmp_path, monkeypatch):
    """(RunDir of a workspace whose .cockpit/engine.sock is too long, the socket
    directory it falls back to) with the temporary directory moved under tmp_path."""
    from cockpit.store import rundir

    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(rundir.tempfile, "gettempdir", lambda: str(temp))
    run = rundir.RunDir(tmp_path / ("d" * 120))
    return run, temp / f"cockpit-{os.getuid()}"


def test_the_fallback_socket_directory_is_made_private(fallback):
    run, folder = fallback
    socket = run.socket_path()
    assert socket.parent == folder and folder.is_dir() and not folder.is_symlink()
    assert os.stat(folder).st_mode & 0o777 == 0o700


def test_a_fallback_socket_directory_of_ours_open_to_all_is_made_0700(fallback):
    run, folder = fallback
    folder.mkdir()
    os.chmod(folder, 0o777)
    assert run.socket_path().parent == folder
    assert os.stat(folder).st_mode & 0o777 == 0o700


def test_a_fallback_socket_directory_that_is_a_symlink_is_refused(fallback, tmp_path):
    from cockpit.store.rundir import RunDirError

    run, folder = fallback
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    folder.symlink_to(elsewhere)
    with pytest.raises(RunDirError) as refused:
        run.socket_path()
    message = str(refused.value)
    assert message.startswith(f"{folder} is a symbolic link, not a directory of yours") and "\n" not in message
    assert "give the workspace a shorter path" in message
    assert list(elsewhere.iterdir()) == []


def test_a_fallback_socket_path_that_is_a_file_is_refused(fallback):
    from cockpit.store.rundir import RunDirError

    run, folder = fallback
    folder.write_text("")
    with pytest.raises(RunDirError, match="is not a directory, not a directory of yours"):
        run.socket_path()


def test_a_fallback_socket_directory_of_another_user_is_refused(fallback):
    from cockpit.store.rundir import RunDirError

    if os.geteuid() != 0:
        pytest.skip("giving a directory to another user needs root")
    run, folder = fallback
    folder.mkdir(mode=0o700)
    os.chown(folder, 12345, -1)
    with pytest.raises(RunDirError) as refused:
        run.socket_path()
    assert str(refused.value).startswith(f"{folder} belongs to uid 12345, not to you (uid {os.getuid()}): "
                                         "another user could reach the engine's socket there; remove it")
    assert os.stat(folder).st_uid == 12345 and os.stat(folder).st_mode & 0o777 == 0o700  # left as it was


# ------------------------------------------------------------ records.jsonl --


def _tear_last_record(records: Path) -> bytes:
    """Cut records.jsonl's last object in half, no newline: what a kill -9 or a full disk
    leaves mid-append. Returns the bytes left of that line."""
    data = records.read_bytes()
    assert data.endswith(b"\n")
    start = data[:-1].rfind(b"\n") + 1
    last = data[start:-1]
    torn = last[:len(last) // 2]
    records.write_bytes(data[:start] + torn)
    return torn


async def test_a_torn_last_record_is_set_aside_and_the_session_resumes_with_nothing_lost(tmp_path):
    from engine_support import ScriptedAgent, fast_config, lr, lr_to, of_type, run_session

    from cockpit.commands import Stop

    from cockpit.events import EngineMessage, RowLogged
    from cockpit.store.records import read_records
    from cockpit.store.results import read_rows

    ws = make_workspace(tmp_path / "ws")

    def stop_after_first(engine, event):
        if isinstance(event, RowLogged) and event.experiment == 1:
            engine.send(Stop())

    reason, _ = await run_session(ws, ScriptedAgent({1: lr("0.04", "0.08"), 2: lr_to("0.09")}),  # by idea
                                  fast_config(max_experiments=4), stop_after_first)
    assert reason == "stopped"
    rows_before = read_rows(ws.results_tsv)
    assert rows_before[0].description == "baseline" and len(rows_before) >= 2
    lines_before = ws.records_jsonl.read_bytes().count(b"\n")
    torn = _tear_last_record(ws.records_jsonl)

    reason, events = await run_session(ws, ScriptedAgent([lr("0.08", "0.16")]),
                                       fast_config(resume=True, max_experiments=len(rows_before) + 1))
    assert reason == "max-experiments", [e.text for e in of_type(events, EngineMessage)]
    warnings = [e.text for e in of_type(events, EngineMessage) if e.level == "warning" and "cut off" in e.text]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert warnings[0].startswith(f"{ws.records_jsonl}:{lines_before}: the last line was cut off mid-write")
    saved = list((ws.path / ".cockpit").glob("torn-records-*.txt"))
    assert len(saved) == 1 and saved[0].read_bytes() == torn and str(saved[0]) in warnings[0]  # nothing lost
    assert any("resumed session t1" in e.text and "no baseline re-run" in e.text for e in of_type(events, EngineMessage))

    rows = read_rows(ws.results_tsv)
    assert rows[:-1] == rows_before and len(rows) == len(rows_before) + 1  # the baseline kept, not re-trained
    assert sum(r.description == "baseline" for r in rows) == 1
    records = read_records(ws.records_jsonl)  # every line whole again
    assert [r["experiment"] for r in records if r.get("kind") == "experiment"][:1] == [0]


async def test_a_corrupt_record_in_the_middle_refuses_the_session_before_the_baseline_trains(tmp_path):
    from engine_support import ScriptedAgent, fast_config, lr, of_type, run_session

    from cockpit.events import EngineMessage, RunStarted
    from cockpit.store.results import read_rows
    from cockpit.store.repo import GitRepo

    ws = make_workspace(tmp_path / "ws")
    reason, _ = await run_session(ws, ScriptedAgent([lr("0.04", "0.08")]), fast_config(max_experiments=2))
    assert reason == "max-experiments"
    lines = ws.records_jsonl.read_bytes().split(b"\n")
    assert len(lines) >= 3
    lines[1] = lines[1][: len(lines[1]) // 2] + b"\xff garbage"  # damaged in the middle: not a kill's leftover
    ws.records_jsonl.write_bytes(b"\n".join(lines))
    before = (ws.results_tsv.read_bytes(), ws.records_jsonl.read_bytes())

    reason, events = await run_session(ws, ScriptedAgent([lr("0.08", "0.16")]),
                                       fast_config(tag="t2", max_experiments=2))
    errors = [e.text for e in of_type(events, EngineMessage) if e.level == "error"]
    assert len(errors) == 1 and "\n" not in errors[0]
    assert errors[0].startswith(f"{ws.records_jsonl}:2: not UTF-8 text")
    assert reason == f"error: {errors[0]}"
    assert not of_type(events, RunStarted)  # nothing trained
    assert (ws.results_tsv.read_bytes(), ws.records_jsonl.read_bytes()) == before  # nothing written
    assert len(read_rows(ws.results_tsv)) == 2
    assert not GitRepo(ws.path).branch_exists("autoresearch/t2")


async def test_invalid_json_in_the_middle_is_refused_naming_its_line(tmp_path):
    from engine_support import ScriptedAgent, fast_config, of_type, run_session

    from cockpit.events import EngineMessage, RunStarted

    ws = make_workspace(tmp_path / "ws")
    ws.records_jsonl.write_text('{"kind": "action"}\n{"kind": "act\n{"kind": "action"}\n')
    reason, events = await run_session(ws, ScriptedAgent([]), fast_config(max_experiments=1))
    assert reason.startswith(f"error: {ws.records_jsonl}:2: not valid JSON")
    assert not of_type(events, RunStarted)
    assert not list((ws.path / ".cockpit").glob("torn-records-*"))


def test_a_whole_last_record_without_its_newline_is_left_alone(tmp_path):
    from cockpit.store.records import check_records, set_aside_torn_record

    records = tmp_path / "records.jsonl"
    records.write_bytes(b'{"a": 1}\n{"b": 2}')
    assert set_aside_torn_record(records, tmp_path / "aside") is None
    assert check_records(records) == 2 and records.read_bytes() == b'{"a": 1}\n{"b": 2}'
    records.write_bytes(b'{"a": 1}\n{"b": "\xc3')  # cut inside a UTF-8 character: torn
    assert check_records(records) == 1
    note = set_aside_torn_record(records, tmp_path / "aside")
    assert note is not None and note.startswith(f"{records}:2: the last line was cut off")
    assert records.read_bytes() == b'{"a": 1}\n'
    assert [p.read_bytes() for p in (tmp_path / "aside").iterdir()] == [b'{"b": "\xc3']
