"""cockpit report: the markdown's numbers, the staircase PNG, the CLI, and bad input
(a hand-built results.tsv and records.jsonl; no session runs here)."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from cockpit.cli import main
from cockpit.tools.report import build_report, render_markdown, write_report

HEADER = "commit\tval_bpb\tmemory_gb\tstatus\tdescription\n"


def _record(tag: str, n: int, commit: str, status: str, description: str, val=None, usage=None,
            wall_s: float = 0.0, kind: str = "experiment", minute: int = 0, **extra) -> dict:
    record = {"kind": kind, "experiment": n, "tag": tag, "status": status, "description": description,
              "agent": "openai/gpt-4o-mini", "profile": "cpu", "budget_s": 60.0, "program": "program.md",
              "started": f"2026-11-23T10:{minute:02d}:00+00:00", "ended": f"2026-11-23T10:{minute:02d}:50+00:00",
              "commit": commit, "val_bpb": val, "agent_usage": usage, "log_path": "",
              "timings": {"wall_s": wall_s} if kind == "experiment" else {"propose_s": 2.0}}
    record.update(extra)
    return record


def _usage(prompt: int, completion: int, cost) -> dict:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "cost_usd": cost, "latency_s": 1.0,
            "retries": 0, "calls": 1}


# (commit, val_bpb, status, description, usage) of the newest session, "nov23", in order
SESSION = [
    ("a000000", 1.000000, "keep", "baseline", None),
    ("a000001", 1.010000, "discard", "DEPTH 4 -> 5", _usage(1000, 100, 0.0010)),
    ("a000002", 0.990000, "keep", "MATRIX_LR 0.04 -> 0.08", _usage(1100, 110, 0.0011)),
    ("a000003", 0.000000, "crash", "WINDOW 128 -> 0", _usage(1200, 120, None)),
    ("a000004", 0.960000, "keep", "warmup 0 -> 0.1", _usage(1300, 130, 0.0013)),
    ("a000005", 0.965000, "discard", "EMBEDDING_LR 0.6 -> 0.3", _usage(1400, 140, 0.0014)),
    ("a000006", 0.955000, "keep", "WEIGHT_DECAY 0.2 -> 0.1", _usage(1500, 150, 0.0015)),
    ("a000007", 1.300000, "discard", "DEPTH 4 -> 8", _usage(1600, 160, 0.0016)),
]


def make_workspace(path: Path, extra_records: tuple = (), log: str = "") -> Path:
    """An older session "nov22" (2 rows), then "nov23" (SESSION), a dropped and a
    vetoed proposal with usage, and an action record."""
    path.mkdir(parents=True, exist_ok=True)
    rows, records = [], []
    for n, (commit, val, status, description) in enumerate(
            [("b000000", 1.100000, "keep", "baseline"), ("b000001", 1.050000, "keep", "DEPTH 3 -> 4")]):
        rows.append(f"{commit}\t{val:.6f}\t0.4\t{status}\t{description}\n")
        records.append(_record("nov22", n, commit, status, description, val, _usage(5000, 500, 0.5), wall_s=70))
    for n, (commit, val, status, description, usage) in enumerate(SESSION):
        rows.append(f"{commit}\t{val:.6f}\t{0.0 if status == 'crash' else 0.5}\t{status}\t{description}\n")
        records.append(_record("nov23", n, commit, status, description, None if status == "crash" else val, usage,
                               wall_s=72.0, minute=n, log_path=log if n == 0 else ""))
        if n == 3:
            records.append(_record("nov23", 4, "", "dropped", "(dropped proposal)", kind="dropped",
                                   usage=_usage(900, 90, 0.0009), minute=n))
            records.append(_record("nov23", 4, "c000000", "vetoed", "ADAM_BETA1 0.8 -> 0.9", kind="vetoed",
                                   usage=_usage(800, 80, 0.0008), minute=n))
            records.append({"kind": "action", "action": "veto", "experiment": 4, "commit": "c000000",
                            "time": "2026-11-23T10:03:30+00:00", "detail": "dropped", "tag": "nov23"})
    records.extend(extra_records)
    (path / "results.tsv").write_text(HEADER + "".join(rows))
    (path / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _section(markdown: str, title: str) -> str:
    return markdown.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_markdown_numbers_of_the_newest_session(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    report = build_report(ws)
    assert report.tag == "nov23" and len(report.rows) == len(SESSION)
    markdown = render_markdown(report, "report-nov23-staircase.png")
    assert markdown.startswith("# Session report: nov23\n")
    assert "2026-11-23 10:00–10:07 UTC" in markdown
    assert "| profile | cpu |" in markdown and "| time budget | 60 s per run |" in markdown
    assert "| agent | litellm |" in markdown and "| model | openai/gpt-4o-mini |" in markdown
    assert "| hardware | not recorded |" in markdown

    result = _section(markdown, "Result")
    assert "| baseline | 1.000000 | #0 `a000000` baseline |" in result
    assert "| best | 0.955000 | #6 `a000006` WEIGHT_DECAY 0.2 -> 0.1 |" in result
    assert "| improvement | 0.045000 | 4.50 % lower than the baseline |" in result

    wins = [line for line in _section(markdown, "Top wins").splitlines() if line.startswith("| ") and "`" in line]
    assert [line.split(" | ")[0] for line in wins] == ["| 4", "| 2", "| 6"]  # -0.030, -0.010, -0.005
    assert "| 4 | `a000004` | 0.960000 | -0.030000 | warmup 0 -> 0.1 |" in wins[0]
    assert "| -0.010000 |" in wins[1] and "| -0.005000 |" in wins[2]

    counts = _section(markdown, "Counts")
    assert "| experiments (results rows) | 8 |" in counts
    assert "| keep / discard / crash | 4 / 3 / 1 |" in counts
    assert "| proposals vetoed / dropped / withdrawn (no row) | 1 / 1 / 0 |" in counts
    # 8 rows from 10:00:00 to 10:07:50 = 470 s
    assert f"| experiments per hour | {8 / (470 / 3600):.1f} |" in counts

    cost = _section(markdown, "Cost")
    tokens = sum(u["prompt_tokens"] for *_, u in SESSION if u) + 900 + 800
    completion = sum(u["completion_tokens"] for *_, u in SESSION if u) + 90 + 80
    assert f"| agent tokens (prompt / completion) | {tokens:,} / {completion:,} in 9 calls |" in cost
    assert "| agent cost | $0.0096 |" in cost  # 0.0010+0.0011+0.0013+0.0014+0.0015+0.0016+0.0009+0.0008
    assert f"| GPU hours (sum of run wall time) | {8 * 72 / 3600:.4f} h (9.6 min) |" in cost
    assert "| session wall hours | 0.1306 h (7.8 min) |" in cost

    noise = _section(markdown, "Noise floor and holdout")
    assert "- noise floor: not measured in this session" in noise
    assert "- holdout: not measured in this session" in noise
    assert "![staircase](report-nov23-staircase.png)" in markdown


def test_an_older_session_by_tag(tmp_path):
    report = build_report(make_workspace(tmp_path / "ws"), tag="nov22")
    assert [r.commit for r in report.rows] == ["b000000", "b000001"]
    assert report.best.val_bpb == 1.05 and report.usage["cost_usd"] == pytest.approx(1.0)
    assert report.wins[0].delta == pytest.approx(-0.05)


def test_noise_floor_holdout_and_hardware_rendered_when_present(tmp_path):
    noise = {"kind": "noise-floor", "tag": "nov23", "runs": [1.001, 0.999, 1.000], "sigma": 0.001}
    ws = make_workspace(tmp_path / "ws", extra_records=(noise,), log="logs/exp-0000-a000000.log")
    (ws / "logs").mkdir()
    (ws / "logs" / "exp-0000-a000000.log").write_text(
        "attention: FlashAttention-3\nbatch: 524,288 tokens per step; device cuda; profile h100\n")
    records = [json.loads(line) for line in (ws / "records.jsonl").read_text().splitlines()]
    for record in records:
        if record.get("tag") == "nov23" and record.get("status") == "keep":
            record["holdout_bpb"] = record["val_bpb"] + 0.02
    (ws / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))

    markdown = render_markdown(build_report(ws), "x.png")
    assert "| hardware | cuda GPU (from logs/exp-0000-a000000.log; device name not recorded) |" in markdown
    assert "- noise floor: σ = 0.001000 bpb over 3 runs, 0.999000 to 1.001000" in markdown
    assert "45.0 σ of the noise floor" in markdown
    assert "| delta | Δ/σ | description |" in markdown and "| -0.030000 | -30.0 |" in markdown
    holdout = _section(markdown, "Noise floor and holdout")
    assert "not measured" not in holdout
    assert "| 6 | `a000006` | 0.955000 | 0.975000 | +0.020000 |" in holdout
    assert holdout.count("| `a0000") == 4  # the four keeps

    del noise["sigma"]  # sigma from the runs when the record has none
    ws2 = make_workspace(tmp_path / "ws2", extra_records=(noise,))
    assert build_report(ws2).noise.sigma == pytest.approx(0.001)


def test_a_revert_and_a_forced_keep(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    rows = [("d000000", 1.0, "keep", "baseline"), ("d000001", 0.9, "keep", "A"),
            ("d000001", 0.9, "discard", "A [reverted]"), ("d000002", 0.95, "keep", "B"),
            ("d000003", 0.97, "keep", "C [forced]")]
    (ws / "results.tsv").write_text(HEADER + "".join(f"{c}\t{v:.6f}\t0.1\t{s}\t{d}\n" for c, v, s, d in rows))
    records = [_record("t1", n, c, s, d, v) for n, (c, v, s, d) in enumerate(rows) if "[reverted]" not in d]
    (ws / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    report = build_report(ws)
    assert [r.experiment for r in report.rows] == [0, 1, 2, 3, 4]  # the revert row has no record: #1 + 1
    # best is the incumbent at the end (cockpit.rules.standing, as the status bar shows it): the forced C;
    # the lowest kept value still standing is B's, the reverted 0.9 no longer counts
    assert report.best.commit == "d000003" and report.lowest.commit == "d000002"
    assert [(w.commit, round(w.delta, 6)) for w in report.wins] == [("d000002", -0.05)]
    assert [r.incumbent for r in report.rows] == [1.0, 0.9, 1.0, 0.95, 0.97]
    assert [r.reverted for r in report.rows] == [False, True, False, False, False]
    markdown = render_markdown(report, "x.png")
    assert "| forced keeps / reverts / vetoed runs | 1 / 1 / 0 |" in markdown
    assert "| best | 0.970000 | #4 `d000003` C [forced] |" in markdown
    assert "| lowest kept | 0.950000 | #3 `d000002` B (not the incumbent" in markdown


def test_every_kept_row_names_its_attention_backend(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    backends = {0: "fa3:kernels-community/flash-attn3", 2: "fa3:kernels-community/flash-attn3", 4: "sdpa-masked",
                5: "flex"}  # #6's record is older than the field: unknown
    records = [json.loads(line) for line in (ws / "records.jsonl").read_text().splitlines()]
    for record in records:
        if record.get("tag") == "nov23" and record.get("kind") == "experiment" and record["experiment"] in backends:
            record["attention"] = backends[record["experiment"]]
    (ws / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    with open(ws / "results.tsv", "a") as handle:  # a forced keep of #5: no record, its run's backend
        handle.write("a000005\t0.965000\t0.5\tkeep\tEMBEDDING_LR 0.6 -> 0.3 [forced keep of #5]\n")

    kept = _section(render_markdown(build_report(ws), "x.png"), "Kept experiments")
    rows = [line for line in kept.splitlines() if line.startswith("| ") and "`a0000" in line]
    assert rows == ["| 0 | `a000000` | 1.000000 | `fa3:kernels-community/flash-attn3` | baseline |",
                    "| 2 | `a000002` | 0.990000 | `fa3:kernels-community/flash-attn3` | MATRIX_LR 0.04 -> 0.08 |",
                    "| 4 | `a000004` | 0.960000 | `sdpa-masked` | warmup 0 -> 0.1 |",
                    "| 6 | `a000006` | 0.955000 | - | WEIGHT_DECAY 0.2 -> 0.1 |",
                    "| 8 | `a000005` | 0.965000 | `flex` | EMBEDDING_LR 0.6 -> 0.3 [forced keep of #5] |"]
    assert ("The kept rows ran on 3 attention backends (`fa3:kernels-community/flash-attn3`, `sdpa-masked`, "
            "`flex`): val_bpb on one does not compare with val_bpb on another") in kept

    (ws / "records.jsonl").unlink()  # results.tsv alone (upstream): every backend unknown, no note
    kept = _section(render_markdown(build_report(ws), "x.png"), "Kept experiments")
    assert "| 0 | `a000000` | 1.000000 | - | baseline |" in kept and "attention backends (" not in kept


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_staircase_png_is_valid_and_not_blank(tmp_path):
    import matplotlib.image

    ws = make_workspace(tmp_path / "ws")
    markdown, png, report = write_report(ws)
    assert (markdown.name, png.name) == ("report-nov23.md", "report-nov23-staircase.png")
    assert png.parent == ws and markdown.parent == ws
    width, height = _png_size(png.read_bytes())
    assert (width, height) == (1200, 600)
    pixels = matplotlib.image.imread(png)
    assert pixels.shape[:2] == (600, 1200)
    assert pixels[..., :3].var() > 0.005  # not a blank canvas
    green = (pixels[..., 1] > 0.5) & (pixels[..., 0] < 0.35) & (pixels[..., 2] < 0.35)
    assert green.sum() > 500  # the kept points and the step line


def test_all_crashed_session_still_draws(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "results.tsv").write_text(HEADER + "e000000\t0.000000\t0.0\tcrash\tbaseline\n")
    (ws / "records.jsonl").write_text(json.dumps(_record("t2", 0, "e000000", "crash", "baseline")) + "\n")
    markdown, png, _ = write_report(ws)
    assert _png_size(png.read_bytes()) == (1200, 600)
    assert "| best | none |" in markdown.read_text()


def test_cli_writes_both_files(tmp_path, capsys):
    ws = make_workspace(tmp_path / "ws")
    assert main(["report", "--workspace", str(ws)]) == 0
    out = capsys.readouterr()
    assert out.err == "" and "session nov23: wrote" in out.out
    assert (ws / "report-nov23.md").is_file() and (ws / "report-nov23-staircase.png").is_file()

    target = tmp_path / "out" / "older.md"
    target.parent.mkdir()
    assert main(["--workspace", str(ws), "report", "--tag", "nov22", "--out", str(target)]) == 0
    assert "![staircase](older-staircase.png)" in target.read_text()
    assert _png_size((target.parent / "older-staircase.png").read_bytes()) == (1200, 600)


@pytest.mark.parametrize("setup", ["missing", "header only", "unknown tag", "unknown tag, results.tsv alone"])
def test_nothing_to_report_exits_2_with_one_line(tmp_path, capsys, setup):
    ws = tmp_path / "ws"
    argv = ["report", "--workspace", str(ws)]
    if setup == "missing":
        ws.mkdir()
    elif setup.startswith("unknown tag"):
        make_workspace(ws)
        argv += ["--tag", "nope"]
        if setup.endswith("alone"):
            (ws / "records.jsonl").unlink()
    else:
        make_workspace(ws)
        (ws / "results.tsv").write_text(HEADER)
    assert main(argv) == 2
    err = capsys.readouterr().err
    error = [line for line in err.splitlines() if not line.startswith("cockpit: warning:")]
    assert len(error) == 1 and error[0].startswith("cockpit: report: "), err
    assert "Traceback" not in err
    assert not list(ws.glob("report-*")) if ws.exists() else True


@pytest.mark.parametrize("records", ["missing", "corrupt only"])
def test_without_usable_records_the_report_comes_from_results_tsv_alone(tmp_path, capsys, records):
    ws = make_workspace(tmp_path / "ws")
    if records == "missing":
        (ws / "records.jsonl").unlink()
    else:
        (ws / "records.jsonl").write_text("{not json\n")
    assert main(["report", "--workspace", str(ws)]) == 0
    # two baseline rows: nov22's and nov23's; the last session is reported
    markdown = (ws / "report-session-2.md").read_text()
    assert "it holds 2 sessions, told apart by their baseline rows; this report covers session-2 (lines 4–11)" \
        in markdown
    assert "| best | 0.955000 | #6 `a000006` WEIGHT_DECAY 0.2 -> 0.1 |" in markdown
    assert "| keep / discard / crash | 4 / 3 / 1 |" in markdown
    assert "| time budget | not recorded |" in markdown and "from `results.tsv` alone." in markdown
    if records == "corrupt only":
        assert "## Notes" in markdown and "records.jsonl:1: not valid JSON" in markdown
    assert main(["report", "--workspace", str(ws), "--tag", "session-1"]) == 0
    assert "| best | 1.050000 | #1 `b000001` DEPTH 3 -> 4 |" in (ws / "report-session-1.md").read_text()


def test_corrupt_lines_are_skipped_with_a_warning(tmp_path, capsys):
    ws = make_workspace(tmp_path / "ws")
    lines = (ws / "records.jsonl").read_text().splitlines(keepends=True)
    lines.insert(3, '{"kind": "experiment", "tag": "nov23", "com\n')
    (ws / "records.jsonl").write_text("".join(lines))
    with open(ws / "results.tsv", "a") as handle:
        handle.write("zzz\tnot-a-number\t0.1\tkeep\tbroken\n")
    assert main(["report", "--workspace", str(ws)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(line.startswith("cockpit: warning: ") for line in err)
    assert "records.jsonl:4: not valid JSON" in err[1] and "results.tsv:12" in err[0]
    assert "| experiments (results rows) | 8 |" in (ws / "report-nov23.md").read_text()


def test_cli_start_up_does_not_import_matplotlib():
    code = ("import sys\nimport cockpit.cli, cockpit.tools.report\n"
            "print('matplotlib' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_report_help_names_its_flags_and_default_tag():
    done = subprocess.run([sys.executable, "-m", "cockpit.cli", "report", "--help"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0
    for text in ("--workspace", "--tag", "--out", "newest session"):
        assert text in done.stdout


UPSTREAM_TSV = Path(__file__).parent / "fixtures" / "upstream_results.tsv"


def test_a_real_upstream_night_reports_from_results_tsv_alone(tmp_path, capsys):
    """A 120-row upstream results.tsv (commit cell ``baseline``, statuses in any case, free text,
    one corrupt line), no records.jsonl, no .cockpit/: the report and its PNG are written and agree
    with a plain reading of the file."""
    ws = tmp_path / "upstream"
    ws.mkdir()
    (ws / "results.tsv").write_bytes(UPSTREAM_TSV.read_bytes())
    assert main(["report", "--workspace", str(ws)]) == 0
    err = capsys.readouterr().err
    assert ":60: val_bpb '0.99x1'" in err  # the one corrupt line: skipped, said once
    # the plain reading: every well-formed line, statuses in any case
    lines = UPSTREAM_TSV.read_text(encoding="utf-8").splitlines()[1:]
    rows = []
    for line in lines:
        commit, val, _mem, status, description = line.split("\t", 4)
        try:
            rows.append((commit, float(val), status.lower(), description))
        except ValueError:
            continue
    assert len(rows) == 120 and rows[0][0] == "baseline"
    kept = [r for r in rows if r[2] == "keep"]
    counts = tuple(sum(r[2] == s for r in rows) for s in ("keep", "discard", "crash"))
    best = min(kept, key=lambda r: r[1])
    markdown = (ws / "report-session-1.md").read_text(encoding="utf-8")
    assert "| experiments (results rows) | 120 |" in markdown
    assert f"| keep / discard / crash | {counts[0]} / {counts[1]} / {counts[2]} |" in markdown
    assert f"| baseline | {rows[0][1]:.6f} | #0 `baseline` baseline |" in markdown
    assert f"| best | {best[1]:.6f} | #{rows.index(best)} `{best[0]}` " in markdown
    assert _png_size((ws / "report-session-1-staircase.png").read_bytes()) == (1200, 600)
    pandas = pytest.importorskip("pandas")
    frame = pandas.read_csv(ws / "results.tsv", sep="\t", on_bad_lines="skip")
    assert len(frame) == 121  # pandas reads the corrupt line as a row with a text val_bpb: nothing merged


def test_gpu_hours_count_the_re_runs_too(tmp_path):
    # the CPU demo's report said 24.0 minutes of 42.6 measured: noise-floor and confirming
    # re-runs use the device as much as an experiment does
    reruns = tuple({"kind": "rerun", "experiment": n, "tag": "nov23", "commit": "a000000", "label": label,
                    "val_bpb": 1.0, "started": "2026-11-23T10:00:10+00:00", "ended": "2026-11-23T10:00:50+00:00",
                    "timings": {"wall_s": 60.0}}
                   for n, label in ((0, "noise floor 1/3"), (0, "noise floor 2/3"), (2, "confirming")))
    report = build_report(make_workspace(tmp_path / "ws", extra_records=reruns))
    assert report.run_s == pytest.approx(8 * 72 + 3 * 60) and report.reruns == 3
    cost = _section(render_markdown(report, "x.png"), "Cost")
    assert f"| GPU hours (sum of run wall time) | {(8 * 72 + 180) / 3600:.4f} h (12.6 min, re-runs included (3)) |" \
        in cost


def test_the_staircase_spans_discards_below_the_running_best():
    from cockpit.tools.report.staircase import value_range

    # the CPU demo's PNG dropped four discards that landed below the running best off its
    # bottom edge, while the legend counted only those above the top
    assert value_range([1.50, 1.45], [1.44, 1.43, 1.60]) == (1.50, 1.43)
    assert value_range([], [1.2, 1.1]) == (1.2, 1.1)
    assert value_range([], []) == (None, None)
