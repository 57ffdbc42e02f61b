"""cockpit.toml settings ([agent] table, program, fix_attempts), CLI flags that
override them only when typed, and how the CLI builds the agent."""

from __future__ import annotations

from pathlib import Path

import pytest
from engine_support import ScriptedAgent, lr, make_workspace

import cockpit.cli.agents as cli_agents
import cockpit.cli.session as cli
from cockpit.cli import build_parser, main
from cockpit.cli.session import run_command
from cockpit.store.settings import program_spec
from cockpit.store.records import read_records
from cockpit.store.settings import AgentSettings, SettingsError, parse_agent, parse_settings
from cockpit.store.workspace import WorkspaceError, load_workspace

AGENT_TOML = '''profile = "tiny"
fix_attempts = 1

[agent]
name = "offline"
model = "openai/from-toml"
api_base = "http://toml:1/v1"
timeout_s = 30
stream = false
temperature = 0.5
'''


def test_agent_table_and_the_one_line_form():
    table = parse_agent({"name": "litellm", "model": "m", "timeout_s": 30, "max_retries": 2,
                         "stream": True, "temperature": 1}, "x")
    assert table == AgentSettings("litellm", "m", None, 30.0, 2, True, 1.0)
    assert table.options() == {"model": "m", "timeout_s": 30.0, "max_retries": 2, "stream": True,
                               "temperature": 1.0}
    assert parse_agent("offline", "x") == parse_agent(None, "x") == AgentSettings()
    settings, agent = parse_settings({"profile": "cpu", "program": "hyperparameters", "fix_attempts": 0}, "x")
    assert (settings.program, settings.fix_attempts, agent) == ("hyperparameters", 0, AgentSettings())


@pytest.mark.parametrize("table, message", [
    ({"api_key": "sk-123"}, "set the API key in the environment"),
    ({"modle": "m"}, "unknown [agent] key 'modle'"),
    ({"stream": "yes"}, "[agent] stream must be bool"),
    ({"max_retries": 1.5}, "[agent] max_retries must be int"),
    ({"timeout_s": 0}, "timeout_s must be a positive, finite number"),
    ({"timeout_s": float("inf")}, "timeout_s must be a positive, finite number"),
    ({"temperature": float("nan")}, "temperature must be a finite number"),
    ({"modle": "m"}, "(did you mean 'model'?)"),
])
def test_bad_agent_tables_are_refused(table, message):
    with pytest.raises(SettingsError) as refused:
        parse_agent(table, "cockpit.toml")
    assert message in str(refused.value)


def test_flags_win_only_when_typed(tmp_path):
    ws = load_workspace(make_workspace(tmp_path / "ws", toml=AGENT_TOML).path)
    assert ws.settings.fix_attempts == 1 and ws.agent.model == "openai/from-toml"
    assert ws.agent.with_flags() == ws.agent
    typed = ws.agent.with_flags(name="litellm", api_base="http://flag:2/v1")
    assert (typed.name, typed.model, typed.api_base, typed.timeout_s) == (
        "litellm", "openai/from-toml", "http://flag:2/v1", 30.0)
    (ws.path / "cockpit.toml").write_text('profile = "tiny"\n[agent]\napi_key = "sk-1"\n')
    with pytest.raises(WorkspaceError, match="API key"):
        load_workspace(ws.path)


def test_litellm_without_a_model_is_one_error_line(tmp_path, capsys):
    ws = make_workspace(tmp_path / "ws")
    assert main(["--workspace", str(ws.path), "--headless", "--agent", "litellm"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == ("cockpit: --agent litellm needs a model: give --model MODEL "
                   "or set model under [agent] in cockpit.toml")
    assert main(["--workspace", str(ws.path), "--headless", "--agent", "nosuch"]) == 1
    assert "'nosuch'" in capsys.readouterr().err


def test_run_command_and_program_flags(tmp_path, monkeypatch):
    ws = load_workspace(make_workspace(tmp_path / "ws").path)
    assert run_command("python train.py --fast 'a b'", ws) == ("python", "train.py", "--fast", "a b")
    assert run_command(None, ws)[1:] == ("-u", "train.py")
    with pytest.raises(ValueError, match="empty"):
        run_command("  ", ws)
    monkeypatch.chdir(tmp_path)
    assert program_spec("hyperparameters") == "hyperparameters"
    assert program_spec("notes/p.md") == str(tmp_path / "notes" / "p.md")


def test_session_builds_the_agent_from_toml_and_flags(tmp_path, monkeypatch, capsys):
    ws = make_workspace(tmp_path / "ws", toml=AGENT_TOML)
    built = {}
    usage = {"prompt_tokens": 1200, "completion_tokens": 80, "cost_usd": 0.0042, "latency_s": 2.0, "retries": 0}
    agent = ScriptedAgent([lr("0.04", "0.08")], usages=[usage])

    real_make_agent = cli_agents.make_agent

    def fake_make_agent(name, **options):  # the session's other agents (offline, optuna) are the real ones
        built[name] = options
        return agent if name == "litellm" else real_make_agent(name, **options)

    monkeypatch.setattr(cli_agents, "make_agent", fake_make_agent)
    code = main(["--workspace", str(ws.path), "--headless", "--max-experiments", "2", "--budget", "0.2",
                 "--tag", "s1", "--agent", "litellm", "--model", "openai/from-flag", "--program", "hyperparameters"])
    out = capsys.readouterr().out
    assert code == 0
    assert built["litellm"] == {"seed": 0, "model": "openai/from-flag", "api_base": "http://toml:1/v1",
                                "timeout_s": 30.0, "stream": False, "temperature": 0.5}
    assert set(built) == {"litellm", "offline", "optuna", "optuna+litellm"}  # the agents n switches between (a model is set)
    assert "hyper-parameters only" in agent.contexts[0].program_md
    experiments = [r for r in read_records(Path(ws.path) / "records.jsonl") if r["kind"] == "experiment"]
    assert experiments[1]["program"] == "programs/hyperparameters.md"
    assert len([r for r in read_records(Path(ws.path) / "records.jsonl") if r["kind"] == "rerun"]) == 3
    assert "MATRIX_LR 0.04 -> 0.08  [agent 1,200+80 tok, $0.0042]" in out
    assert "; agent 1,200+80 tok, $0.0042 in 1 calls" in out


def test_noise_abort_and_pipeline_settings(tmp_path):
    values, _ = parse_settings({"noise_runs": 5, "keep_threshold": 0.001, "early_abort": True, "abort_after": 0.5,
                             "abort_margin": 0.1, "pipeline": False}, "x")
    assert (values.noise_runs, values.keep_threshold, values.early_abort) == (5, 0.001, True)
    assert (values.abort_after, values.abort_margin, values.pipeline) == (0.5, 0.1, False)
    defaults, _ = parse_settings({}, "x")
    assert (defaults.noise_runs, defaults.early_abort, defaults.pipeline) == (3, False, True)
    for bad, message in (({"noise_runs": -1}, "noise_runs"), ({"early_abort": "yes"}, "early_abort"),
                         ({"abort_after": 1.5}, "abort_after"), ({"keep_threshold": -0.1}, "keep_threshold"),
                         ({"pipeline": 1}, "pipeline")):
        with pytest.raises(SettingsError, match=message):
            parse_settings(bad, "cockpit.toml")
    ws = load_workspace(make_workspace(tmp_path / "ws", toml='profile = "tiny"\nnoise_runs = 2\nearly_abort = true\n').path)
    config, _ = cli.session_setup(build_parser().parse_args(["--workspace", str(ws.path)]), ws, headless=True)
    assert (config.settings.noise_runs, config.settings.early_abort, config.settings.pipeline) == (2, True, True)
    flags = build_parser().parse_args(["--workspace", str(ws.path), "--noise-runs", "0", "--no-pipeline"])
    config, _ = cli.session_setup(flags, ws, headless=True)
    assert (config.settings.noise_runs, config.settings.pipeline) == (0, False)
    assert "--noise-runs" in cli.serve_argv(flags, ws, "t") and "0" in cli.serve_argv(flags, ws, "t")


@pytest.mark.parametrize("toml, message", [
    ('profile = "tiny"\nbudget = 30\n', "unknown key 'budget' (did you mean 'budget_s'?)"),
    ('profile = "tiny"\nfix_atempts = 1\n', "unknown key 'fix_atempts' (did you mean 'fix_attempts'?)"),
    ('profile = "nope"\n', "unknown profile 'nope'; known: cpu, h100, tiny"),
    ('profile = "tinny"\n', "unknown profile 'tinny' (did you mean 'tiny'?)"),
    ('profile = "tiny"\nbudget_s = 1e400\n', "budget_s must be a positive, finite number of seconds"),
    ('profile = "tiny"\nbudget_s = nan\n', "budget_s must be a positive, finite number of seconds"),
    ('profile = "tiny"\nbudget_s = inf\n', "budget_s must be a positive, finite number of seconds"),
    ('profile = "tiny"\nabort_margin = inf\n', "abort_margin must be a finite number"),
])
def test_misspelled_keys_profiles_and_endless_numbers_are_one_line(tmp_path, capsys, toml, message):
    """A cockpit.toml mistake is refused before anything runs, naming the file and the nearest key."""
    ws = make_workspace(tmp_path / "ws")
    (ws.path / "cockpit.toml").write_text(toml)
    assert main(["--workspace", str(ws.path), "--headless"]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and str(ws.path / "cockpit.toml") in err
    assert not (ws.path / "results.tsv").exists()


@pytest.mark.parametrize("value", ["inf", "nan", "-inf", "1e400", "0", "-3"])
def test_budget_flag_must_be_finite_and_positive(tmp_path, capsys, value):
    ws = make_workspace(tmp_path / "ws")
    with pytest.raises(SystemExit) as exited:
        main(["--workspace", str(ws.path), "--headless", f"--budget={value}"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "--budget" in err and ("finite" in err or "greater than 0" in err)


def test_every_session_setting_in_cockpit_toml_reaches_the_engine(tmp_path):
    """Each setting at a value other than its default must arrive in the SessionConfig the
    CLI builds (a constant written into cli/session.py in place of the file's value fails here)."""
    toml = ('profile = "tiny"\nfix_attempts = 1\napproval_gate = false\npipeline = false\nnoise_runs = 2\n'
            'keep_threshold = 0.0125\nearly_abort = true\nabort_after = 0.45\nabort_margin = 0.21\n')
    ws = load_workspace(make_workspace(tmp_path / "ws", toml=toml).path)
    config, _ = cli.session_setup(build_parser().parse_args(["--workspace", str(ws.path)]), ws, headless=True)
    assert (config.settings.fix_attempts, config.settings.pipeline, config.settings.noise_runs) == (1, False, 2)
    assert (config.settings.keep_threshold, config.settings.early_abort) == (0.0125, True)
    assert (config.settings.abort_after, config.settings.abort_margin) == (0.45, 0.21)
    defaults = cli.SessionConfig(tag="t").settings
    for name in ("fix_attempts", "pipeline", "noise_runs", "keep_threshold", "early_abort", "abort_after",
                 "abort_margin"):
        assert getattr(config.settings, name) != getattr(defaults, name), name  # the file's value, not the default


def test_every_declared_setting_is_parsed_flagged_templated_and_tabled():
    """One declaration per setting (cockpit.store.settings) reaches cockpit.toml parsing, the CLI
    flags (typed wins), init's template and the README table: nothing is listed by hand."""
    import argparse
    import dataclasses

    from cockpit.store.settings import Settings, render_template, settings_table, specs
    odd = {bool: lambda d: not d, int: lambda d: d + 1, float: lambda d: 0.5 if d is None else d / 2 + 0.01,
           str: lambda d: "hyperparameters" if d is None else "cpu"}
    template, table = render_template("cpu"), settings_table()
    flags = {a.dest: a for a in build_parser()._actions}
    for name, default, spec in specs():
        value = spec.example if spec.accept is not None else odd[spec.kind](default)  # gpus: its own rule
        settings, _ = parse_settings({name: value}, "x")
        assert getattr(settings, name) == value, name
        assert f"| `{name}` |" in table
        assert spec.template is False or f"# {name} = " in template
        if spec.flag:
            dest = spec.flag[2:].replace("-", "_")
            assert dest in flags, spec.flag
            typed = argparse.Namespace(**{dest: True if spec.kind is bool else value})
            assert getattr(Settings().with_flags(typed), name) == (not spec.off if spec.kind is bool else value)
            assert getattr(Settings().with_flags(argparse.Namespace()), name) == default  # not typed: the file's
    assert [f.name for f in dataclasses.fields(Settings)] == [name for name, _, _ in specs()]


@pytest.mark.parametrize("value, ok", [(8, True), ("all", True), ("0,2,5", True), ("2", True), (0, False),
                                       ("many", False), (True, False), (2.5, False), ("0,0", False)])
def test_gpus_in_cockpit_toml_takes_what_the_flag_takes(value, ok):
    if ok:
        assert parse_settings({"gpus": value}, "x")[0].gpus == value
    else:
        with pytest.raises(SettingsError, match="gpus must be"):
            parse_settings({"gpus": value}, "x")


def test_gpus_reach_the_engine_daemon_and_a_bad_value_is_one_line(tmp_path, capsys):
    from cockpit.cli import build_parser
    from cockpit.cli.session import serve_argv
    from cockpit.store.workspace import load_workspace

    ws = make_workspace(tmp_path / "ws")
    args = build_parser().parse_args(["--workspace", str(ws.path), "--gpus", "0,2", "--ray-address", "127.0.0.1:1"])
    argv = serve_argv(args, load_workspace(ws.path), "t")  # the cockpit's daemon runs the fleet
    assert argv[argv.index("--gpus") + 1] == "0,2" and argv[argv.index("--ray-address") + 1] == "127.0.0.1:1"
    with pytest.raises(SystemExit):
        main(["--workspace", str(ws.path), "--headless", "--gpus", "none"])
    assert "expected a number of GPUs" in capsys.readouterr().err
