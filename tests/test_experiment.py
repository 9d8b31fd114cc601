"""End to end: the CLI on the smoke configs, resume after a kill, and one-line errors."""

import csv
import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from local_files import write_text_folder, write_tiny_imagenet

from gtap_jax import experiment
from gtap_jax.baselines import BASELINES
from gtap_jax.layout import PlayerLayout, allocate, keep_per_layer, mask_of
from gtap_jax.strategies import STRATEGIES, Round, Scores, StrategyResult

# Real copies of the tweet sets: $GTAP_TEST_DATA/<data set>, by default a shared/data folder beside the checkout
SHARED_DATA = Path(os.environ.get("GTAP_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "gtap_jax" / "configs"


def _cli(*args, **kw):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    cmd = [sys.executable, "-m", "gtap_jax.prune", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, **kw)


def _mtimes(workdir):
    return {p.name: p.stat().st_mtime_ns for p in (workdir / "steps").glob("*.json")}


@pytest.mark.slow
def test_cli_smoke_killed_then_resumed(tmp_path):
    wd = tmp_path / "run"
    args = ["--config", f"{CONFIGS}/lenet300_mnist.py:smoke", "--workdir", str(wd), "--config.progress=False"]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    log = open(tmp_path / "killed.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "gtap_jax.prune", *args], stdout=log, stderr=log, env=env)
    marker = wd / "steps" / "masks__iterated_pruning__shapley.json"
    deadline = time.time() + 300
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    proc.kill()
    proc.wait()
    assert marker.exists(), (tmp_path / "killed.log").read_text()[-2000:]
    assert not (wd / "results.csv").exists()  # it really stopped in the middle
    before = _mtimes(wd)
    assert "train.json" in before and "masks__top_n__shapley.json" in before

    resumed = _cli(*args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = _mtimes(wd)
    assert {k: after[k] for k in before} == before  # nothing finished was redone
    assert "done train" not in resumed.stderr and "done masks/top_n/shapley" not in resumed.stderr
    assert "done masks/iterated_building/beta" in resumed.stderr
    assert "retrain = scratch" in resumed.stdout  # the summary table

    rows = list(csv.DictReader(open(wd / "results.csv")))
    methods = {r["method"] for r in rows}
    assert methods == {f"{s}/{i}" for s in ("top_n", "iterated_pruning", "iterated_building")
                       for i in ("shapley", "beta")} | {"wmp", "wgmp", "random", "lottery"}
    assert len(rows) == 10 * 2  # one size; no retraining and one scratch seed
    for r in rows:
        assert r["neurons"] == "80" and 0.0 <= float(r["accuracy"]) <= 1.0
        assert int(r["params"]) < int(r["params_total"]) and float(r["flops"]) < float(r["flops_total"])
        if r["family"] == "gtap":
            assert int(r["evaluations"]) > 0
    # Trained well above chance, and pruned networks are not all at chance.
    results = json.loads((wd / "results.json").read_text())
    assert results["summary"]["trained_test_accuracy"] > 0.6
    assert max(float(r["accuracy"]) for r in rows) > 0.5
    assert 0 < results["summary"]["d"] < 1
    software = results["summary"]["software"]  # what produced the numbers
    assert software["versions"]["jax"] == jax.__version__ and software["device"].startswith("cpu")
    assert software["date"].endswith("+00:00")
    for name in ("compression_curves.png", "uncertainty_bands.png", "bands.json", "config.json"):
        assert (wd / name).stat().st_size > 0
    assert len(list((wd / "compact").iterdir())) == 6  # compacted params of every GTAP result

    again = _cli(*args)
    assert again.returncode == 0
    assert "done " not in again.stderr  # every step skipped
    assert _mtimes(wd) == after


def test_cli_refuses_a_workdir_of_another_config(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"seed": 7}))
    out = _cli("--config", f"{CONFIGS}/lenet300_mnist.py:smoke", "--workdir", str(tmp_path))
    assert out.returncode == 2 and "holds the results of another config" in out.stderr


def _config(name, **fields):
    c = importlib.import_module(f"gtap_jax.configs.{name}").get_config("smoke")
    c.progress = False
    for path, value in fields.items():
        node = c
        *parents, leaf = path.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return c


# Each smoke run keeps what it alone covers and leaves what another run covers: scratch retraining and the
# lottery ticket of dense layers (the CLI run of lenet300), the iterated strategies (the same, and resnet's and
# transformer's for groups and heads), latency, every allocation and fine-tuning (vit's), budgets of parameters
# (resnet's and vit's; iterated pruning by value per parameter, resnet's), leave-one-out and random players of
# groups and heads (transformer's); mlp_twitter_topic
# differs from mlp_emotion only in its data (test_twitter_topic_smoke_config_validates_on_its_data).
SMOKE_FIELDS = {
    "lenet5_mnist": {"gtap.strategies": ("top_n",), "baselines": ("wmp", "lottery")},  # a conv model retrained
    "mlp_emotion": {"retrain.modes": ("none",)},
    "alexnet_tiny_imagenet": {"retrain.modes": ("none",)},
    "resnet_mnist": {"latency": False, "baselines": ("wmp", "gate"), "gtap.cost_rounds": True},
    "transformer_emotion": {"latency": False, "target_unit": "players"},  # budgets: resnet's and vit's
    "vit_mnist": {"allocations": ("global", "cost"), "gtap.strategies": ("top_n",),  # proportional: every other
                  "baselines": ("gate",)},
}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lenet5_mnist", "mlp_emotion", "alexnet_tiny_imagenet", "resnet_mnist",
                                  "vit_mnist", "transformer_emotion"])
def test_smoke_configs_run_end_to_end(tmp_path, name, capsys):
    folder = tmp_path / "data"
    folder.mkdir()
    fields = dict(SMOKE_FIELDS[name])
    if name.startswith("mlp") or name == "transformer_emotion":
        real = SHARED_DATA / ("twitter_financial_news_topic" if name == "mlp_twitter_topic" else "emotion")
        if not real.exists():  # the real tweets where a copy is found (see SHARED_DATA)
            write_text_folder(folder, n=400)
        fields |= {"data.source": "path", "data.path": str(real if real.exists() else folder)}
    elif name.startswith("alexnet"):
        write_tiny_imagenet(folder, classes=3, per_class=20, val=12)
        fields |= {"data.path": str(folder)}
    config = _config(name, **fields)
    rows = experiment.run(config, tmp_path / "run")
    assert rows and all(0.0 <= r["accuracy"] <= 1.0 for r in rows)
    assert {r["retrain"] for r in rows} == set(config.retrain.modes)
    assert (tmp_path / "run" / "compression_curves.png").exists()
    assert "retrain = none" in capsys.readouterr().out
    _check_kept_neurons(tmp_path / "run", layerwise=config.game.layerwise)
    if config.game.selection_examples:
        _check_selection(tmp_path / "run")
    if config.latency:  # the residual models: every pruned network compacts, streams and heads included
        assert all(r["params"] < r["params_total"] and r["flops"] < r["flops_total"] for r in rows)
        assert all(r["latency_ms"] > 0 and r["latency_ms_total"] > 0 for r in rows)  # measured, beside the dense


def test_twitter_topic_smoke_config_validates_on_its_data(tmp_path):
    """mlp_twitter_topic's smoke run is mlp_emotion's on another data set: its config validates, its data loads
    (the real topic tweets where a copy is found) and its model plays the game on them."""
    from gtap_jax import data, network_game
    from gtap_jax.models import MODELS
    from gtap_jax.network import init_params

    real = SHARED_DATA / "twitter_financial_news_topic"
    if not real.exists():
        write_text_folder(tmp_path, n=400)
    folder = real if real.exists() else tmp_path
    config = _config("mlp_twitter_topic", **{"data.source": "path", "data.path": str(folder)})
    experiment.validate(config)
    ds = data.load(config.data.name, source=config.data.source, path=config.data.path, seed=config.seed,
                   **dict(config.data.options))
    assert ds.num_classes == (20 if real.exists() else 3) and ds.x_train.shape[1] == config.data.options["vocab_size"]
    model = MODELS[config.model.name](ds.num_classes, **dict(config.model.options))
    params = init_params(jax.random.key(0), model, ds.input_shape)
    value, layout = network_game(model, params, ds.x_val[:64], ds.y_val[:64], layers=list(config.game.layers))
    assert layout.layers == (("fc1", 256), ("fc2", 256), ("fc3", 256))
    assert np.isfinite(float(value(np.ones(layout.num_players, bool))))


def _check_kept_neurons(workdir, layerwise):
    """Every method keeps exactly its target size (or meets its budget of parameters); proportional methods (the
    baselines by default, every method of a layer-wise run) keep each layer's proportional share."""
    results = json.loads((workdir / "results.json").read_text())
    summary, rows = results["summary"], results["rows"]
    layout = PlayerLayout(tuple(summary["layers"].items()))
    row = {(r["method"], str(r["target"])): r for r in rows}
    for name, by_target in json.loads((workdir / "masks.json").read_text()).items():
        for target, found in by_target.items():
            mask = mask_of(found["kept"], layout.num_players)
            r = row[(name, target)]
            assert r["neurons"] == mask.sum() == len(found["kept"]), (name, target)
            if summary["target_unit"] == "players":
                assert mask.sum() == int(target), (name, target)
            else:  # a budget: met by every method
                assert r["params"] <= float(target) * r["params_total"], (name, target, r["params"])
            if r["allocation"] == "proportional":
                per_layer = {n: int(m.sum()) for n, m in layout.split(mask).items()}
                assert per_layer == allocate(layout, int(mask.sum())), (name, target, per_layer)
    if summary["target_unit"] == "players":
        assert {r["neurons"] for r in rows} == set(summary["sizes"])


def _check_selection(workdir):
    """The reported variants are the best on the selection set, and would be whatever the test set said."""
    from gtap_jax.experiment.report import select

    results = json.loads((workdir / "results.json").read_text())
    rows, choices = results["rows"], results["selection"]["choices"]
    keys = ("method", "family", "retrain", "target", "selection_accuracy")
    assert select([{k: r[k] for k in keys} for r in rows]) == choices
    for c in choices:
        for family in ("gtap", "baseline"):
            cell = [r for r in rows if (r["retrain"], r["target"], r["family"]) == (c["retrain"], c["target"], family)]
            assert max(r["selection_accuracy"] for r in cell) == next(
                r["selection_accuracy"] for r in cell if r["method"] == c[family])
            assert all(r["selected"] == (family if r["method"] == c[family] else "") for r in cell)
    with pytest.raises(ValueError, match="only the method"):  # a candidate carrying test accuracy is refused
        select([{k: r[k] for k in (*keys, "accuracy")} for r in rows])


def test_selection_set_is_cut_from_validation_apart_from_the_game(tmp_path, monkeypatch):
    """The game's examples and the selection set are disjoint parts of the validation split, and the
    selection reads no test accuracy: the same choices whatever the test set says."""
    report_module = importlib.import_module("gtap_jax.experiment.report")  # where the run's selection calls select
    seen = []
    real = report_module.select
    monkeypatch.setattr(report_module, "select", lambda candidates: seen.append(candidates) or real(candidates))
    config = _config("lenet300_mnist", **{"gtap.strategies": ("top_n",), "gtap.indices": ("banzhaf",),
                                          "baselines": ("wmp", "random"), "retrain.modes": ("none",),
                                          "game.selection_examples": 150, "allocations": ("proportional", "global")})
    experiment.run(config, tmp_path / "run")
    summary = json.loads((tmp_path / "run" / "results.json").read_text())["summary"]
    assert summary["game_examples"] == 200 and summary["selection_examples"] == 150  # of 500 validation images
    assert seen and all("accuracy" not in c for cands in seen for c in cands)
    _check_selection(tmp_path / "run")


def test_target_sizes():
    assert experiment.target_sizes((0.5, 0.1, 20), 400) == [200, 40, 20]
    assert experiment.target_sizes((1.0, 1), 400) == [400, 1]  # a float is a fraction: 1.0 keeps every neuron
    with pytest.raises(experiment.ConfigError, match="not in"):
        experiment.target_sizes((1.5,), 400)
    with pytest.raises(experiment.ConfigError, match="not in"):
        experiment.target_sizes((1,), 400, min_size=2)


def test_allocation_is_proportional_and_exact():
    layout = PlayerLayout((("a", 300), ("b", 100)))
    assert allocate(layout, 80) == {"a": 60, "b": 20}
    assert sum(allocate(layout, 7).values()) == 7 and min(allocate(layout, 2).values()) == 1
    scores = np.arange(400.0)
    keep = keep_per_layer(scores, layout, 80)
    assert keep[240:300].all() and keep[380:].all() and keep.sum() == 80


def test_a_new_strategy_and_baseline_are_one_function_and_one_registry_line(tmp_path, monkeypatch):
    """A toy strategy and a toy baseline, registered by name, run through the experiment like the built-in ones."""
    picked = {}

    def first_players(key, value_fn, num_players, sizes, attribute, *, step=None):
        """Keeps the first r players for every r: no estimates at all."""
        rounds = tuple(Round(np.arange(0), np.arange(num_players) < r, Scores(np.zeros(0), np.zeros(0), 0))
                       for r in sorted([sizes] if isinstance(sizes, int) else sizes, reverse=True))
        return StrategyResult(rounds[-1].mask, rounds)

    def last_players(inputs, sizes):
        picked.update({s: np.arange(inputs.layout.num_players) >= inputs.layout.num_players - s for s in sizes})
        return dict(picked)

    monkeypatch.setitem(STRATEGIES, "first", first_players)
    monkeypatch.setitem(BASELINES, "last", last_players)
    config = _config("lenet300_mnist", **{"gtap.strategies": ("first",), "gtap.indices": ("banzhaf",),
                                          "baselines": ("last",), "targets": (0.5, 20), "retrain.modes": ("none",)})
    rows = experiment.run(config, tmp_path / "run")
    assert {(r["method"], r["neurons"]) for r in rows} == {(m, s) for m in ("first/banzhaf", "last") for s in (200, 20)}
    masks = json.loads((tmp_path / "run" / "masks.json").read_text())
    for size in (200, 20):
        assert masks["first/banzhaf"][str(size)]["kept"] == list(range(size))
        np.testing.assert_array_equal(mask_of(masks["last"][str(size)]["kept"], 400), picked[size])
    assert all(r["evaluations"] == 0 for r in rows)


def test_model_options_reach_the_model_or_are_an_error(tmp_path):
    """A built-in model takes its config's model.options; one it does not take is a config error, not ignored."""
    from gtap_jax.models import MODELS

    assert MODELS["lenet5"](10, conv=(3, 4), dense=(8, 6)).site_sizes() == {"conv1": 3, "conv2": 4, "fc1": 8, "fc2": 6}
    with pytest.raises(TypeError):
        MODELS["lenet300"](10, width=2)
    config = _config("lenet300_mnist", **{"model.options": {"width": 2}})
    with pytest.raises(experiment.ConfigError, match="model.options {'width': 2} for model 'lenet300'"):
        experiment.run(config, tmp_path / "run")
    assert not (tmp_path / "run" / "config.json").exists()


@pytest.mark.parametrize("name", ["lenet300_mnist", "lenet5_mnist", "mlp_emotion", "mlp_twitter_topic"])
def test_verdict_variants_choose_on_a_selection_set(name):
    """Each MNIST and tweet config's ``verdict`` variant validates and keeps the verdict protocol: a selection set
    beside the game's examples, budgets of parameters, every allocation, only the selected pair retrained."""
    c = importlib.import_module(f"gtap_jax.configs.{name}").get_config("verdict")
    experiment.validate(c)
    assert c.game.selection_examples > 0 and c.game.eval_examples > 0 and c.retrain.selected_only
    assert c.target_unit == "params" and set(c.allocations) == {"proportional", "global", "cost"}
    assert {"gate", "loo"} <= set(c.baselines) and "finetune" in c.retrain.modes
    with pytest.raises(ValueError, match="use '', 'verdict' or 'smoke'"):
        importlib.import_module(f"gtap_jax.configs.{name}").get_config("verdicts")


def test_a_renamed_field_names_its_new_name():
    config = _config("lenet300_mnist")
    config.unlock()
    config.gtap.methods = {"banzhaf": "msr"}
    with pytest.raises(experiment.ConfigError, match="gtap.methods is now gtap.estimators"):
        experiment.validate(config)


def test_unknown_names_list_the_registered_ones():
    registered = r"\['iterated_building', 'iterated_pruning', 'top_n'\] \(unknown strategy 'greedy'\)"
    with pytest.raises(experiment.ConfigError, match=registered):
        experiment.validate(_config("lenet300_mnist", **{"gtap.strategies": ("greedy",)}))
    with pytest.raises(ValueError, match=r"unknown baseline 'magnitude'; expected one of \['gate', 'loo', 'lottery'"):
        BASELINES["magnitude"]


def test_finetune_starts_from_the_pruned_weights(tmp_path, monkeypatch):
    """retrain mode finetune trains the compacted network from its pruned weights, for finetune_epochs."""
    from gtap_jax import compact
    from gtap_jax.models import lenet300
    from gtap_jax.network import load_params
    from gtap_jax.network.staged import StagedNetwork

    started = []
    real = StagedNetwork.fit

    def spy(self, key, x, y, *, epochs, **kw):
        started.append((self.model, self.params, epochs))
        return real(self, key, x, y, epochs=epochs, **kw)

    monkeypatch.setattr(StagedNetwork, "fit", spy)
    config = _config("lenet300_mnist", **{"gtap.strategies": ("top_n",), "gtap.indices": ("banzhaf",),
                                          "baselines": ("wmp",), "retrain.modes": ("none", "finetune"),
                                          "retrain.finetune_epochs": 2})
    rows = experiment.run(config, tmp_path / "run")
    assert {(r["method"], r["retrain"]) for r in rows} == {(m, mode) for m in ("top_n/banzhaf", "wmp")
                                                           for mode in ("none", "finetune")}
    trained = load_params(tmp_path / "run" / "model" / "trained", started[0][1])
    finetunes = [s for s in started if s[2] == 2]
    assert len(finetunes) == 2  # one per method (one seed, one size)
    layout = PlayerLayout((("fc1", 300), ("fc2", 100)))
    for method, (model, params, _) in zip(("top_n/banzhaf", "wmp"), finetunes, strict=True):
        mask = mask_of(json.loads((tmp_path / "run" / "masks.json").read_text())[method]["80"]["kept"], 400)
        pruned = compact(lenet300(), trained, layout, mask)
        assert model == pruned.model
        jax.tree.map(np.testing.assert_array_equal, params, pruned.params)
    none = {r["method"]: r["accuracy"] for r in rows if r["retrain"] == "none"}
    tuned = {r["method"]: r["accuracy"] for r in rows if r["retrain"] == "finetune"}
    assert all(tuned[m] > none[m] for m in none)  # two epochs from the pruned weights recover accuracy


USER_MODELS = '''
import flax.linen as nn
from flax import nnx


class CNN(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.relu(nn.BatchNorm(use_running_average=not train)(nn.Conv(6, (3, 3), strides=(2, 2))(x)))
        x = nn.relu(nn.Dense(16)(x.reshape((x.shape[0], -1))))
        return nn.Dense(10)(x)


class MLP(nnx.Module):
    def __init__(self, hidden, rngs):
        self.fc1 = nnx.Linear(784, hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, 10, rngs=rngs)

    def __call__(self, x):
        return self.out(nnx.relu(self.fc1(x.reshape(x.shape[0], -1))))


def cnn():
    return CNN()


def mlp(hidden=24):
    return MLP(hidden, nnx.Rngs(0))
'''


def _fit(logits_fn, params, ds, steps=60):
    """A few Adam steps on the training split (a model that is better than chance)."""
    import optax

    tx = optax.adam(3e-3)
    state = tx.init(params)

    @jax.jit
    def step(params, state, x, y):
        grads = jax.grad(lambda p: optax.softmax_cross_entropy_with_integer_labels(logits_fn(p, x), y).mean())(params)
        updates, state = tx.update(grads, state)
        return optax.apply_updates(params, updates), state

    for i in range(steps):
        params, state = step(params, state, ds.x_train[i * 50 % 3000:][:50], ds.y_train[i * 50 % 3000:][:50])
    return params


@pytest.mark.slow
@pytest.mark.parametrize("api", ["linen", "nnx"])
def test_a_users_flax_model_runs_from_the_config(tmp_path, monkeypatch, api):
    """model.factory + model.checkpoint: every method at every size, sizes from the compacted model, and a
    row's accuracy equal to the masked model's computed here."""
    import jax.numpy as jnp
    from flax import nnx

    from gtap_jax import data
    from gtap_jax.experiment.setup import save_checkpoint
    from gtap_jax.network import network_game
    from gtap_jax.network.linen import masked_variables
    from gtap_jax.network.nnx import masked_model

    (tmp_path / "my_models.py").write_text(USER_MODELS)
    monkeypatch.syspath_prepend(str(tmp_path))
    import my_models

    ds = data.load("mnist")
    if api == "linen":
        model, layers = my_models.cnn(), ("Conv_0", "Dense_0")  # weight baselines need the kernels' modules
        variables = model.init(jax.random.key(0), ds.x_val[:1])
        variables = {**variables, "batch_stats": jax.tree.map(lambda a: a + 0.2, variables["batch_stats"])}
        params = _fit(lambda p, x: model.apply({**variables, "params": p}, x), variables["params"], ds)
        variables = {**variables, "params": params}
    else:
        model, variables, layers = my_models.mlp(hidden=24), None, ("fc1",)
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)
        model = nnx.merge(graphdef, _fit(lambda p, x: nnx.merge(graphdef, p, rest)(x), params, ds), rest)
    save_checkpoint(tmp_path / "ckpt", model, variables)
    config = _config("lenet300_mnist", **{
        "model.factory": f"my_models:{api if api == 'nnx' else 'cnn'}".replace("nnx", "mlp"),
        "model.checkpoint": str(tmp_path / "ckpt"), "game.layers": layers, "baselines": ("wmp", "wgmp", "random"),
        "retrain.modes": ("none",), "gtap.indices": ("beta",), "targets": (0.5,),
        "gtap.strategies": ("top_n",)})  # the strategies see only the value function: lenet300's smoke covers them
    if api == "linen":
        config.model.apply_kwargs = {"train": False}
    rows = experiment.run(config, tmp_path / "run")
    methods = {r["method"] for r in rows}
    assert methods == {f"{s}/beta" for s in config.gtap.strategies} | {"wmp", "wgmp", "random"}
    total = 6 + 16 if api == "linen" else 24
    assert {r["neurons"] for r in rows} == {total // 2}
    assert all(r["params"] < r["params_total"] and r["flops"] < r["flops_total"] for r in rows)
    row = next(r for r in rows if r["method"] == "wmp" and r["neurons"] == total // 2)
    found = json.loads((tmp_path / "run" / "masks.json").read_text())["wmp"][str(total // 2)]
    mask = mask_of(found["kept"], total)
    _, layout = network_game(model, variables, ds.x_val[:2], ds.y_val[:2], layers=list(layers))
    if api == "linen":
        logits = model.apply(masked_variables(variables, layout, mask), ds.x_test)
    else:
        logits = masked_model(model, layout, mask)(jnp.asarray(ds.x_test))
    assert row["accuracy"] == pytest.approx(np.mean(np.asarray(np.argmax(logits, -1)) == ds.y_test), abs=1e-9)
    assert len({r["accuracy"] for r in rows}) > 1  # trained: the methods' networks differ in accuracy


@pytest.mark.parametrize("fields,fragment", [
    ({"model.factory": "my_models.cnn"}, "expected 'package.module:function'"),
    ({"model.factory": "my_models:cnn"}, "needs the folder of its trained weights"),
    ({"model.factory": "no_such_module:make", "model.checkpoint": "."}, "cannot import it"),
    ({"model.factory": "my_models:cnn", "model.checkpoint": ".", "retrain.modes": ("none", "scratch")},
     "evaluated as trained"),
    ({"model.factory": "my_models:cnn", "model.checkpoint": ".", "baselines": ("lottery",)},
     "lottery_ticket takes your training function"),
])
def test_a_bad_user_model_config_is_one_clear_error(tmp_path, fields, fragment):
    config = _config("lenet300_mnist", **{"retrain.modes": ("none",), "baselines": ("wmp",), **fields})
    with pytest.raises(experiment.ConfigError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        experiment.run(config, tmp_path / "run")
    assert not (tmp_path / "run" / "config.json").exists()
