"""The CLI under bad input, damaged workdirs and concurrent runs: one clear error, nothing lost.

Every bad input ends with exit status 2 and exactly one ``error:`` line naming
the field or file, no traceback, and leaves nothing in the workdir that could
refuse the corrected command; damaged step records are recomputed with a
warning naming them; a second run in a busy workdir is refused, naming the
process; an interrupted estimation step resumes mid-way with the same result.
"""

import ast
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from local_files import write_text_folder

from gtap_jax import experiment
from gtap_jax.configs import lenet300_mnist
from gtap_jax.experiment import progress

ROOT = Path(__file__).resolve().parents[1]
SMOKE = f"{ROOT}/gtap_jax/configs/lenet300_mnist.py:smoke"
# The smallest complete run: two GTAP methods, one baseline, one size, no retraining.
TINY = ["--config.gtap.strategies=('top_n', 'iterated_pruning')", "--config.gtap.indices=('banzhaf',)",
        "--config.baselines=('wmp',)", "--config.retrain.modes=('none',)", "--config.progress=False"]


def _cli(workdir, *args, config=SMOKE, popen=False):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    cmd = [sys.executable, "-m", "gtap_jax.prune", "--config", config, "--workdir", str(workdir), *args]
    if popen:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


def _one_error(out, fragment):
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2, out.stderr[-2000:]
    assert "Traceback" not in out.stderr, out.stderr[-2000:]
    assert sum(line.startswith("error:") for line in lines) == 1, out.stderr[-2000:]
    assert lines[-1].startswith("error:") and fragment in lines[-1], lines[-1]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Bad data files of every kind, and a shared workdir that every refused run must leave usable."""
    d = tmp_path_factory.mktemp("bad")
    (d / "bad_syntax.py").write_text("def get_config(:\n")
    (d / "empty.npz").write_bytes(b"")
    (d / "truncated.npz").write_bytes(b"PK\x03\x04" + b"\x00" * 20)
    np.savez(d / "no_keys.npz", images=np.zeros((3, 28, 28)))
    for name, train in {
        "empty_csv": "",
        "string_labels": "text,label\n" + "market stocks up,joy\n" * 40,
        "malformed_csv": 'text,label\n"market stocks up,1\n',
        "too_small": "text,label\nmarket stocks,1\nstorm rain,2\n",
        "wrong_columns": "sentence,label\nmarket stocks,1\n",
    }.items():
        (d / name).mkdir()
        (d / name / "train.csv").write_text(train)
        (d / name / "test.csv").write_text("text,label\nmarket stocks,1\nstorm rain,2\n")
    (d / "outside").mkdir()
    write_text_folder(d / "outside", n=80)
    text = (d / "outside" / "train.csv").read_text().replace(",2\n", ",25\n")
    (d / "outside" / "train.csv").write_text(text)
    (d / "tokens").mkdir()
    write_text_folder(d / "tokens", n=80)
    (d / "a_file").write_text("not a folder")
    (d / "workdir").mkdir()
    return d


def _text(path):
    return ["--config.data.name=emotion", "--config.data.source=path", f"--config.data.path={path}",
            "--config.model.name=text_mlp", "--config.game.layers=('fc1', 'fc2', 'fc3')"]


BAD_ARGS = [  # (arguments, fragment of the error line); files are named relative to the fixture folder
    (["--config.nope=3"], "no such config field"),
    (["--config.train.batch_size=abc"], "config.train.batch_size=abc"),
    (["--config.gtap.d=1.5"], "gtap.d=1.5: expected a number in (0, 1)"),
    (["--config.targets=(500,)"], "target size 500 is not in [2, 400]"),
    (["--config.targets=('a',)"], "targets=('a',)"),
    (["--config.targets=()"], "targets=(): expected a non-empty tuple"),
    (["--config.targets=(0,)"], "a neuron count >= 1"),
    (["--config.targets=(1.5,)"], "a keep fraction in (0, 1]"),
    (["--config.baselines=('magnitude',)"], "unknown baseline 'magnitude'"),
    (["--config.gtap.indices=('owen',)"], "unknown index 'owen'"),
    (["--config.gtap.strategies=('greedy',)"], "unknown strategy 'greedy'"),
    (["--config.gtap.estimators.shapley=msr"], "gtap.estimators.shapley='msr'"),
    (["--config.game.layers=()"], "game.layers is empty"),
    (["--config.game.layers=('fc9',)"], "unknown layer(s) ['fc9']"),
    (["--config.data.name=cifar"], "unknown dataset 'cifar'"),
    (["--config.data.source=path"], "needs path="),
    (["--config.train.batch_size=0"], "train.batch_size=0: expected an integer >= 1"),
    (["--config.train.epochs=-1"], "train.epochs=-1: expected an integer >= 1"),
    (["--config.train.learning_rate=-0.1"], "train.learning_rate=-0.1"),
    (["--config.game.eval_examples=-5"], "game.eval_examples=-5: expected an integer >= 0"),
    (["--config.game.metric=f1"], "game.metric='f1'"),
    (["--config.gtap.step=0"], "gtap.step=0"),
    (["--config.gtap.step=1.5"], "gtap.step=1.5"),
    (["--config.gtap.evaluations=-1"], "gtap.evaluations=-1: expected an integer >= 0"),
    (["--config.gtap.delta=1.0"], "gtap.delta=1.0: expected a number in (0, 1)"),
    (["--config.gtap.epsilon=-0.1"], "gtap.epsilon=-0.1"),
    (["--config.bands.keep_fractions=()"], "bands.keep_fractions=()"),
    (["--config.bands.num_samples=0"], "bands.num_samples=0: expected an integer >= 2"),
    (["--config.bands.rule=widest"], "bands.rule='widest'"),
    (["--config.retrain.modes=()"], "retrain.modes=()"),
    (["--config.retrain.modes=('sometimes',)"], "unknown retrain mode 'sometimes'"),
    (["--config.model.name=resnet", "--config.game.layers=('stem:group',)"], "the lottery ticket retrains under"),
    (["--config.model.name=resnet", "--config.game.layers=('stem:group',)", "--config.baselines=('wmp',)",
      "--config.game.masked_value=mean"], "game.masked_value='mean' with coupled groups"),
    (["--config.model.name=resnet", "--config.game.layers=('s1b1:group',)", "--config.baselines=('wmp',)"],
     "'s1b1' is not a leaf module"),
    (["--config.data.source=path", "--config.data.path={d}/empty.npz"], "cannot read mnist from"),
    (["--config.data.source=path", "--config.data.path={d}/truncated.npz"], "BadZipFile"),
    (["--config.data.source=path", "--config.data.path={d}/no_keys.npz"], "x_train"),
    (["--config.data.source=path", "--config.data.path={d}/missing"], "no MNIST at"),
    (["--config.allocations=('uniform',)"], "unknown allocation 'uniform'"),
    (["--config.target_unit=bytes"], "target_unit='bytes'"),
    (["--config.target_unit=params", "--config.targets=(20,)"], "fractions of the network's parameters"),
    (["--config.gtap.indices=('beta_1.5',)"], "unknown index 'beta_1.5'"),
    (["--config.game.selection_examples=450", "--config.game.eval_examples=100"], "need 550 validation examples"),
    (["--config.retrain.selected_only=True"], "needs a selection set"),
    (["--config.gtap.estimators.shapley=pilot", "--config.gtap.evaluations=4096"], "'pilot' needs settled rounds"),
    (["--config.gtap.estimators.beta=pilot"], "gtap.estimators.beta='pilot'"),
    (["--config.gtap.cost_rounds=True", "--config.game.layerwise=True"], "needs one joint game"),
    (_text("{d}/empty_csv"), "cannot read emotion"),
    (_text("{d}/string_labels"), "labels must be integer class ids"),
    (_text("{d}/malformed_csv"), "ParserError"),
    (_text("{d}/too_small"), "too few examples"),
    (_text("{d}/wrong_columns"), "needs columns 'text' and 'label'"),
    (_text("{d}/outside"), "labels must lie in [0, 6)"),
    (["--config.data.name=emotion", "--config.data.source=path", "--config.data.path={d}/tokens",
      "--config.data.options.vocab_size=50", "--config.data.options.sequence_length=8",
      "--config.model.name=text_transformer", "--config.model.options.vocab_size=4",
      "--config.game.layers=('embed:group',)", "--config.baselines=('random',)", "--config.retrain.modes=('none',)"],
     "model.options.vocab_size=4 embeds token ids below 4, but the data has id"),
]


# Through the command line, one of each way in: flag parsing, field validation, sizes against the model,
# layers, an MNIST file, a tweet file. The rest raise the same errors from experiment.run, which the command
# line prints as its one error line (prune.py): checked in-process, a subprocess start saved per case.
CLI_BAD_ARGS = [BAD_ARGS[i] for i in (0, 1, 2, 3, 13, 35, -2)] + [
    (["--config.gtap.methods.shapley=msr"], "--config.gtap.methods* is now --config.gtap.estimators*")]


@pytest.mark.parametrize("args,fragment", CLI_BAD_ARGS, ids=[" ".join(a)[-60:] for a, _ in CLI_BAD_ARGS])
def test_bad_input_is_one_error_line_and_writes_nothing(files, args, fragment):
    workdir = files / "workdir"
    out = _cli(workdir, *[a.format(d=files) for a in args])
    _one_error(out, fragment)
    assert not (workdir / "config.json").exists() and not (workdir / "steps").exists()


IN_PROCESS = [case for case in BAD_ARGS if case not in CLI_BAD_ARGS]


@pytest.mark.parametrize("args,fragment", IN_PROCESS, ids=[" ".join(a)[-60:] for a, _ in IN_PROCESS])
def test_bad_input_is_one_clear_error_from_the_run(files, args, fragment):
    """The error the command line turns into its one line: named, one line of text, nothing written."""
    from gtap_jax.data import DataUnavailableError

    config = lenet300_mnist.get_config("smoke")
    config.unlock()
    for arg in (a.format(d=files) for a in args):
        field, text = arg[len("--config."):].split("=", 1)
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        *parents, leaf = field.split(".")
        node = config
        for part in parents:
            node = node[part]
        node[leaf] = value
    workdir = files / "workdir"
    with pytest.raises((experiment.ConfigError, DataUnavailableError)) as e:
        experiment.run(config, workdir)
    assert fragment in str(e.value) and "\n" not in str(e.value), str(e.value)
    assert not (workdir / "config.json").exists() and not (workdir / "steps").exists()


@pytest.mark.parametrize("config,workdir,fragment", [
    ("{d}/nope.py", "workdir", "config file"),
    ("{d}/bad_syntax.py", "workdir", "syntax error at line 1"),
    (SMOKE.replace(":smoke", ":nosuch"), "workdir", "unknown variant 'nosuch'"),
    (SMOKE, "a_file", "is a file, not a folder"),
    (SMOKE, "x" * 300, "File name too long"),
])
def test_bad_config_file_or_workdir(files, config, workdir, fragment):
    out = _cli(files / workdir, config=config.format(d=files))
    _one_error(out, fragment)


@pytest.fixture(scope="module")
def finished_and_refused(files):
    """The corrected command, run in the workdir that every refusal above left behind: nothing poisoned it.

    While it runs, a second run in the same workdir is started (and refused): the two tests share
    one run. The damage tests below start from copies of this finished run.
    """
    workdir = files / "workdir"
    first = _cli(workdir, *TINY, popen=True)
    lock = workdir / ".lock"
    deadline = time.time() + 120
    while not (lock.exists() and lock.read_text().startswith("pid")) and time.time() < deadline:
        time.sleep(0.1)
    second = _cli(workdir, *TINY)
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err[-3000:]
    return workdir, first.pid, second


@pytest.fixture(scope="module")
def finished(finished_and_refused):
    return finished_and_refused[0]


def test_the_corrected_command_then_runs_in_the_same_workdir(finished):
    assert (finished / "results.csv").exists() and (finished / "config.json").exists()


def _results(workdir):
    """results.csv without its timings."""
    rows = csv.DictReader(open(workdir / "results.csv"))
    return [{k: v for k, v in r.items() if not k.endswith("seconds")} for r in rows]


def _stored(workdir, step):
    return json.loads((workdir / "steps" / (step.replace("/", "__") + ".json")).read_text())


def test_damaged_records_are_recomputed_with_a_warning(finished, tmp_path):
    wd = shutil.copytree(finished, tmp_path / "run")
    results = _results(wd)
    steps = wd / "steps"
    (steps / "masks__top_n__banzhaf.json").write_text((steps / "masks__top_n__banzhaf.json").read_text()[:40])
    (steps / "bands.json").write_text("")
    edited = _stored(wd, "masks/wmp")
    edited["record"]["scores"] = edited["record"]["scores"][::-1]
    (steps / "masks__wmp.json").write_text(json.dumps(edited))
    foreign = _stored(wd, "masks/iterated_pruning/banzhaf")
    foreign["config"] = "0123456789abcdef"
    (steps / "masks__iterated_pruning__banzhaf.json").write_text(json.dumps(foreign))
    (wd / "config.json").write_text("{trunc")
    (wd / ".lock").write_text("pid 999999 on a machine that died")  # a stale lock: no process holds it

    again = _cli(wd, *TINY)
    assert again.returncode == 0, again.stderr[-3000:]
    err = again.stderr
    assert "config.json is damaged" in err
    assert "step masks/top_n/banzhaf" in err and "unreadable" in err
    assert "step bands" in err
    assert "step masks/wmp" in err and "checksum does not match" in err
    assert "step masks/iterated_pruning/banzhaf" in err and "written by another config" in err
    assert "done train" not in err  # intact records are kept
    assert _results(wd) == results  # recomputed to the same results
    assert json.loads((wd / "config.json").read_text())["seed"] == 0


def test_deleted_config_json_does_not_relabel_another_configs_results(finished, tmp_path):
    wd = shutil.copytree(finished, tmp_path / "run")
    (wd / "config.json").unlink()
    other = _cli(wd, *TINY, "--config.seed=1")
    assert other.returncode == 0, other.stderr[-3000:]
    assert "step train" in other.stderr and "written by another config" in other.stderr
    assert "done train" in other.stderr  # retrained for seed 1, not relabelled


def test_a_second_run_in_a_busy_workdir_is_refused(finished_and_refused):
    _, pid, second = finished_and_refused
    _one_error(second, "is in use by another run (pid")
    assert f"pid {pid} " in second.stderr


def _one_method(strategy, **gtap):
    """The lenet300 smoke config with one GTAP method (``strategy``/banzhaf), no baselines, no retraining, and a game
    of 50 examples (what is saved and resumed does not depend on their number)."""
    c = lenet300_mnist.get_config("smoke")
    c.unlock()
    c.progress = False
    c.game.eval_examples = 50
    c.gtap.strategies, c.gtap.indices, c.baselines = (strategy,), ("banzhaf",), ()
    for field, value in gtap.items():
        c.gtap[field] = value
    c.retrain.modes = ("none",)
    return c


@pytest.mark.slow
def test_an_interrupted_estimation_step_resumes_midway_with_the_same_result(tmp_path, monkeypatch):
    """Stopped in the middle of a round, the step resumes from the saved estimator state."""

    def config():  # four saved slices per round (regression: one value a draw)
        c = _one_method("iterated_pruning", evaluations=2048, checkpoint_every=512)
        c.gtap.estimators.banzhaf = "regression"
        return c

    real, calls = progress.estimate, []

    def counted(*args, **kw):
        calls.append(kw["state"].num_draws)
        return real(*args, **kw)

    monkeypatch.setattr(progress, "estimate", counted)
    experiment.run(config(), tmp_path / "whole")
    whole_calls = len(calls)

    def interrupted(*args, **kw):
        if len(calls) == 6:  # round 1 done (4 slices), round 2 stopped after 2 of its 4 slices
            raise KeyboardInterrupt
        return counted(*args, **kw)

    calls.clear()
    monkeypatch.setattr(progress, "estimate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        experiment.run(config(), tmp_path / "stopped")
    partial = list((tmp_path / "stopped" / "partial" / "iterated_pruning__banzhaf").glob("*.partial.npz"))
    assert len(partial) == 1  # the round in progress kept its estimator state

    calls.clear()
    monkeypatch.setattr(progress, "estimate", counted)
    experiment.run(config(), tmp_path / "stopped")
    assert whole_calls == 8  # two rounds of four slices
    assert calls[0] == 1024 and len(calls) == whole_calls - 6  # resumed mid-round; finished work not redone
    stopped, whole = (_stored(tmp_path / w, "masks/iterated_pruning/banzhaf")["record"] for w in ("stopped", "whole"))
    assert (stopped["priority"], stopped["rounds"]) == (whole["priority"], whole["rounds"])
    stopped, whole = (json.loads((tmp_path / w / "masks.json").read_text()) for w in ("stopped", "whole"))
    assert {s: (r["kept"], r["evaluations"]) for s, r in stopped["iterated_pruning/banzhaf"].items()} == \
        {s: (r["kept"], r["evaluations"]) for s, r in whole["iterated_pruning/banzhaf"].items()}
    assert not (tmp_path / "stopped" / "partial" / "iterated_pruning__banzhaf").exists()  # cleaned up


@pytest.mark.slow
def test_an_interrupted_settling_round_resumes_at_its_last_check_with_the_same_result(tmp_path, monkeypatch):
    """Settled mode saves its state at every check; a stopped round continues from there."""

    def config():
        return _one_method("top_n", evaluations=0, max_evaluations=8192)

    real, saves = progress._save_settle, []

    def counted(path, state, meta):
        saves.append(state.checks)
        real(path, state, meta)

    monkeypatch.setattr(progress, "_save_settle", counted)
    experiment.run(config(), tmp_path / "whole")
    whole_saves = list(saves)
    assert len(whole_saves) >= 3, whole_saves  # the test needs a round of several checks

    def interrupted(path, state, meta):
        counted(path, state, meta)
        if len(saves) == 2:
            raise KeyboardInterrupt

    saves.clear()
    monkeypatch.setattr(progress, "_save_settle", interrupted)
    with pytest.raises(KeyboardInterrupt):
        experiment.run(config(), tmp_path / "stopped")
    saves.clear()
    monkeypatch.setattr(progress, "_save_settle", counted)
    experiment.run(config(), tmp_path / "stopped")
    assert saves == whole_saves[2:]  # resumed after the second check
    stopped, whole = (json.loads((tmp_path / w / "masks.json").read_text())["top_n/banzhaf"]
                      for w in ("stopped", "whole"))
    assert {s: (r["kept"], r["evaluations"], r["settled_share"]) for s, r in stopped.items()} == \
        {s: (r["kept"], r["evaluations"], r["settled_share"]) for s, r in whole.items()}


def test_help_prints_the_flags_and_the_common_fields(capsys):
    """``--help`` / ``-h`` (and the console script's) print the usage, the shipped configs and the fields set most
    with their defaults, and exit 0; absl alone would refuse them as unknown flags."""
    from gtap_jax import prune

    for flag in ("--help", "-h"):
        with pytest.raises(SystemExit) as done:
            prune.main(["gtap-prune", flag])
        assert done.value.code == 0
        text = capsys.readouterr().out
        assert text.startswith("usage: python -m gtap_jax.prune --config FILE.py[:variant] --workdir DIR")
        assert "lenet300_mnist" in text and "--config.gtap.indices=('shapley', 'banzhaf', 'beta')" in text
    script = shutil.which("gtap-prune")
    out = subprocess.run([script, "--help"] if script else [sys.executable, "-m", "gtap_jax.prune", "--help"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "--workdir DIR" in out.stdout and not out.stderr.strip()
