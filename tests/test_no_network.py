"""--no-network / network = false: train.py runs in a network namespace of its own.

The fake train.py tries to reach a TCP server of this test on 127.0.0.1: with the
network it connects; with --no-network it cannot (its namespace has only a loopback
that is down and not the host's), and the session's rows are the same.
"""

from __future__ import annotations

import socket
import threading

import pytest
from engine_support import FAKES, make_workspace

import cockpit.training.no_network as no_network
from cockpit.cli import main
from cockpit.store.results import read_rows
from cockpit.store.repo import GitRepo


def reaching_train_py(port: int, out: str) -> str:
    plant = f'''
import socket as _socket
try:
    _socket.create_connection(("127.0.0.1", {port}), timeout=2).close()
    _reached = "reached"
except OSError as _exc:
    _reached = "unreachable"
with open({out!r}, "a") as _out:
    _out.write(_reached + "\\n")
'''
    return (FAKES / "train.py").read_text().replace('print("---")', plant + 'print("---")', 1)


@pytest.fixture
def listener():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    stop = threading.Event()

    def serve():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                server.accept()[0].close()
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    server.close()


def session(tmp_path, name, port, *flags):
    ws = make_workspace(tmp_path / name)
    out = tmp_path / f"{name}.txt"
    ws.train_py.write_text(reaching_train_py(port, str(out)))
    GitRepo(ws.path).commit_file("train.py", "a train.py that phones home")
    code = main(["--workspace", str(ws.path), "--headless", "--max-experiments", "1", "--budget", "0.3",
                 "--noise-runs", "0", *flags])
    return ws, code, out.read_text().split()


def test_a_run_without_a_network_cannot_reach_the_host(tmp_path, listener, capsys):
    try:
        no_network.network_prefix()
    except no_network.NoNetworkError as exc:
        pytest.skip(f"no network namespace on this machine: {exc}")
    ws, code, seen = session(tmp_path, "open", listener)
    assert code == 0 and seen and set(seen) == {"reached"}
    closed, code, seen = session(tmp_path, "closed", listener, "--no-network")
    assert code == 0 and seen and set(seen) == {"unreachable"}
    assert [r.status for r in read_rows(closed.results_tsv)] == [r.status for r in read_rows(ws.results_tsv)]
    (closed.path / "cockpit.toml").write_text('profile = "tiny"\nnetwork = false\n')
    GitRepo(closed.path).commit_file("cockpit.toml", "runs without a network")
    out = tmp_path / "toml.txt"
    closed.train_py.write_text(reaching_train_py(listener, str(out)))
    GitRepo(closed.path).commit_file("train.py", "again")
    assert main(["--workspace", str(closed.path), "--headless", "--max-experiments", "1", "--budget", "0.3",
                 "--noise-runs", "0", "--new-session"]) == 0
    assert set(out.read_text().split()) == {"unreachable"}


def test_no_way_to_run_without_a_network_is_one_line_before_anything_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(no_network.shutil, "which", lambda name: None)
    ws = make_workspace(tmp_path / "ws")
    assert main(["--workspace", str(ws.path), "--headless", "--no-network"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "cockpit: --no-network needs unshare (util-linux) or bwrap (bubblewrap); neither is installed"
    assert not ws.results_tsv.exists() or not read_rows(ws.results_tsv)


def test_a_probe_that_still_sees_a_network_is_refused(monkeypatch):
    # a "prefix" that answers as a probe with a network would: an interface besides lo
    monkeypatch.setattr(no_network, "candidates", lambda: [["sh", "-c", "echo interfaces=lo,eth0 reached=no", "--"]])
    with pytest.raises(no_network.NoNetworkError, match="the probe still had a network"):
        no_network.network_prefix()
