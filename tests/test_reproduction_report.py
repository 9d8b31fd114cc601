"""benchmarks/reproduction.py report: the paired comparison across seeds."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "reproduction.py"


@pytest.fixture(scope="module")
def reproduction():
    spec = importlib.util.spec_from_file_location("reproduction", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(method, family, seed, accuracy, retrain_seed=0):
    return {"method": method, "family": family, "neurons": 10, "run_seed": seed, "seed": retrain_seed,
            "accuracy": accuracy, "retrain": "none"}


def test_each_gtap_method_is_paired_seed_by_seed_with_the_best_baseline(reproduction):
    gtap = [0.70, 0.62, 0.81]
    best = [0.60, 0.60, 0.60]  # its mean beats the other baseline's, though that one wins seed 1
    rows = [_row("top_n/beta", "gtap", s, a) for s, a in enumerate(gtap)]
    rows += [_row("loo", "baseline", s, a) for s, a in enumerate(best)]
    rows += [_row("random", "baseline", s, a) for s, a in enumerate([0.2, 0.7, 0.3])]
    # a seed's retrainings are averaged before pairing
    rows += [_row("top_n/beta", "gtap", 0, 0.50, retrain_seed=1), _row("loo", "baseline", 0, 0.60, retrain_seed=1)]
    table = reproduction._paired(rows, [10], "none")
    assert "| best baseline | loo |" in table
    diff = np.array([0.60, 0.62, 0.81]) - 0.60
    t = diff.mean() / (diff.std(ddof=1) / np.sqrt(3))
    p = 2 * (1 - _student_t_cdf(abs(t), df=2))
    line = next(r for r in table if r.startswith("| top_n/beta"))
    assert line == f"| top_n/beta | {diff.mean():+.3f} +- {diff.std():.3f}, 2/3, p={p:.2f} |"


def _student_t_cdf(t, df):
    """The t distribution's CDF for 2 degrees of freedom, in closed form."""
    assert df == 2
    return 0.5 + t / (2 * np.sqrt(2 + t * t))


def test_holm_against_a_hand_computed_example(reproduction):
    # sorted: 0.005 x 4 = 0.02, 0.01 x 3 = 0.03, 0.03 x 2 = 0.06, 0.04 x 1 = 0.04 -> 0.06 (never below the one before)
    adjusted = reproduction.holm([0.01, 0.04, 0.03, 0.005, float("nan")])
    np.testing.assert_allclose(adjusted[:4], [0.03, 0.06, 0.06, 0.02])
    assert np.isnan(adjusted[4])
    assert reproduction.holm([0.5, 0.9]).tolist() == [1.0, 1.0]


def _result(seed, gtap_acc, base_acc):
    rows = [{"method": "top_n/beta_0.9@cost", "family": "gtap", "retrain": "none", "target": 0.8, "seed": None,
             "accuracy": gtap_acc, "params": 800, "flops": 1e6, "neurons": 5},
            {"method": "gate@global", "family": "baseline", "retrain": "none", "target": 0.8, "seed": None,
             "accuracy": base_acc, "params": 790, "flops": 1e6, "neurons": 6},
            {"method": "loo@global", "family": "baseline", "retrain": "none", "target": 0.8, "seed": None,
             "accuracy": 0.99, "params": 790, "flops": 1e6, "neurons": 6}]  # best on test, not selected
    for r in rows:
        r.update(params_total=1000, flops_total=2e6)
    choice = {"retrain": "none", "target": 0.8, "gtap": "top_n/beta_0.9@cost", "baseline": "gate@global"}
    return seed, {"rows": rows, "selection": {"rule": "", "choices": [choice]},
                  "summary": {"trained_test_accuracy": 0.9 + seed / 100}}


def test_verdicts_compare_the_selected_variants_with_holm(reproduction):
    vit = [(0.8, 0.7), (0.82, 0.7), (0.79, 0.72)]
    runs = {("vit_mnist", "joint"): [_result(s, g, b) for s, (g, b) in enumerate(vit)],
            ("resnet_mnist", "joint"): [_result(s, g, b) for s, (g, b) in enumerate([(0.5, 0.6), (0.7, 0.65)])]}
    table = reproduction._verdicts(runs)
    vit = next(line for line in table if line.startswith("| vit_mnist"))
    resnet = next(line for line in table if line.startswith("| resnet_mnist"))
    assert "loo@global" not in vit  # the test set's best baseline is not the one compared
    diff = np.array([0.1, 0.12, 0.07])
    p = 2 * (1 - _student_t_cdf(diff.mean() / (diff.std(ddof=1) / np.sqrt(3)), df=2))
    cells = [c.strip() for c in vit.split("|")]
    assert cells[8].startswith(f"{diff.mean():+.3f}") and cells[9] == "3/3"
    assert float(cells[10]) == pytest.approx(p, abs=1e-3)
    other = float([c.strip() for c in resnet.split("|")][10])
    # Holm over the two cells of the table
    holm = min(1.0, 2 * p) if p < other else max(min(1.0, 2 * other), p)
    assert float(cells[11]) == pytest.approx(holm, abs=1e-3)


def test_merged_views_choose_across_them_on_the_selection_set_only(reproduction):
    def run(gtap_sel, gtap_test, base_sel, base_test):
        rows = [{"method": "top_n/banzhaf@cost", "family": "gtap", "retrain": "none", "target": 0.5, "seed": None,
                 "accuracy": gtap_test, "selection_accuracy": gtap_sel, "params": 50, "flops": 1e3, "neurons": 5},
                {"method": "wmp@cost", "family": "baseline", "retrain": "none", "target": 0.5, "seed": None,
                 "accuracy": base_test, "selection_accuracy": base_sel, "params": 50, "flops": 1e3, "neurons": 5}]
        return {"rows": rows, "selection": {"rule": "", "choices": []}}

    runs = {("lenet300_mnist", "zero"): [(0, run(0.7, 0.99, 0.8, 0.5)), (1, run(0.7, 0.6, 0.8, 0.8))],
            ("lenet300_mnist", "mean"): [(0, run(0.9, 0.1, 0.6, 0.9)), (1, run(0.6, 0.9, 0.9, 0.7))],
            ("vit_mnist", "zero"): [(0, run(0.5, 0.5, 0.5, 0.5))]}  # no mean-fill run: nothing merged
    out = reproduction.merged(runs, ["zero", "mean"])
    assert list(out) == [("lenet300_mnist", "zero+mean")]
    assert sorted(reproduction.judged(runs, ["zero+mean"])) == [("lenet300_mnist", "zero+mean"), ("vit_mnist", "zero")]
    choices = {seed: res["selection"]["choices"][0] for seed, res in out[("lenet300_mnist", "zero+mean")]}
    # the higher selection accuracy wins in each family, whatever the test accuracy
    assert (choices[0]["gtap"], choices[0]["baseline"]) == ("top_n/banzhaf@cost [mean]", "wmp@cost [zero]")
    assert (choices[1]["gtap"], choices[1]["baseline"]) == ("top_n/banzhaf@cost [zero]", "wmp@cost [mean]")
    line = next(x for x in reproduction._verdicts(out) if x.startswith("| lenet300_mnist"))
    diff = np.array([0.1 - 0.5, 0.6 - 0.7])
    assert [c.strip() for c in line.split("|")][8].startswith(f"{diff.mean():+.3f}")


def test_verdicts_average_the_retraining_seeds(reproduction):
    rows = [{"method": m, "family": f, "retrain": "scratch", "target": 0.5, "seed": k, "accuracy": a,
             "params": 50, "flops": 1e3, "neurons": 5}
            for m, f, accs in (("top_n/shapley@cost", "gtap", (0.8, 0.6)), ("wmp@cost", "baseline", (0.5, 0.5)))
            for k, a in enumerate(accs)]
    choice = {"retrain": "scratch", "target": 0.5, "gtap": "top_n/shapley@cost", "baseline": "wmp@cost"}
    runs = {("lenet300_mnist", "joint"): [(s, {"rows": rows, "selection": {"choices": [choice]}}) for s in (0, 1)]}
    line = next(x for x in reproduction._verdicts(runs) if x.startswith("| lenet300_mnist"))
    assert [c.strip() for c in line.split("|")][8].startswith("+0.200")


def test_readme_tables_give_each_set_of_targets_a_table_and_no_verdict_on_one_seed(reproduction):
    vit = [(0.8, 0.7), (0.82, 0.7), (0.79, 0.72)]
    runs = {("vit_mnist", "joint"): [_result(s, g, b) for s, (g, b) in enumerate(vit)],
            ("resnet_mnist", "joint"): [_result(0, 0.5, 0.6)]}
    cells = reproduction._verdict_cells(runs)
    table = reproduction.readme_tables(cells)
    assert table[0].startswith("| config (view), seeds | regime | 0.8 of the parameters |")
    resnet = table[table.index("| resnet_mnist (joint), 1 seed; unpruned 0.900-0.900, 1,000 parameters, 2.00 MFLOPs |"
                               " sizes (GTAP / baseline) | 800 / 790 parameters, 1.00 / 1.00 MFLOPs |") + 1]
    assert any(line.startswith("| vit_mnist (joint), 3 seeds; unpruned 0.900-0.920, ") for line in table)
    assert resnet == "| | none | one seed: -0.100 (0.500 against 0.600; 0/1 ahead) |"
    vit = next(line for line in table if line.startswith("| | none |") and "3 ahead" in line)
    # the only p of the family: Holm leaves it as it is
    assert vit == "| | none | GTAP ahead: +0.097 (0.803 against 0.707; 3/3 ahead, Holm p = 0.022) |"


def test_descriptive_views_are_reported_but_not_judged(reproduction, tmp_path):
    """A view tried after the verdicts' candidates were fixed gets its tables and its selection-set accuracies, and
    no verdict cell: the verdict table (and its Holm family) is that of the other views alone."""
    import argparse
    import json

    for seed, (g, b) in enumerate([(0.8, 0.7), (0.82, 0.7), (0.79, 0.72)]):
        _, res = _result(seed, g, b)
        for r in res["rows"]:
            r["selection_accuracy"] = r["accuracy"] - 0.01
        (tmp_path / f"vit_mnist-s{seed}-verdict.json").write_text(json.dumps(res))
        (tmp_path / f"vit_mnist-s{seed}-verdict-costrounds.json").write_text(json.dumps(res))
    doc = tmp_path / "doc.md"
    args = argparse.Namespace(out=[tmp_path], doc=doc, readme=None, merge=[], descriptive=["verdict-costrounds"])
    reproduction.report(args)
    text = doc.read_text()
    verdicts = text.split("## Verdicts")[1].split("### ")[0]
    assert [line.split("|")[1].strip() for line in verdicts.splitlines() if line.startswith("| vit")] == ["vit_mnist"]
    descriptive = text.split("### vit_mnist (the `verdict` variant with")[1]
    assert "Selection-set accuracy without retraining" in descriptive
    assert "| top_n/beta_0.9@cost | 0.793 +- 0.012 |" in descriptive  # (0.79 + 0.81 + 0.78) / 3
    assert "Selection-set accuracy" not in text.split("### vit_mnist (the `verdict` variant with")[0]


def test_cost_rounds_pick_again_without_the_cost_round_variants(tmp_path):
    spec = importlib.util.spec_from_file_location("cost_rounds", SCRIPT.parent / "cost_rounds.py")
    cost_rounds = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cost_rounds)

    def row(method, family, sel, test, neurons=5):
        return {"method": method, "family": family, "retrain": "none", "target": 0.1, "accuracy": test,
                "selection_accuracy": sel, "neurons": neurons}

    # (selection, test) of: rounds by value, rounds by cost, top_n under the cost allocation (not a cost round)
    seeds = {0: ((0.5, 0.55), (0.6, 0.7), (0.55, 0.4)), 1: ((0.5, 0.5), (0.4, 0.3), (0.45, 0.6))}
    for seed, (value, cost, top) in seeds.items():
        rows = [row("iterated_pruning/banzhaf", "gtap", *value, neurons=4),
                row("iterated_pruning/banzhaf@cost", "gtap", *cost, neurons=8),
                row("top_n/banzhaf@cost", "gtap", *top), row("wmp@cost", "baseline", 0.3, 0.35)]
        picked = max(rows[:3], key=lambda r: r["selection_accuracy"])["method"]
        choice = {"retrain": "none", "target": 0.1, "gtap": picked, "baseline": "wmp@cost",
                  "selection_accuracy": {r["method"]: r["selection_accuracy"] for r in rows}}
        (tmp_path / f"lenet5_mnist-s{seed}-verdict-costrounds.json").write_text(
            json.dumps({"rows": rows, "selection": {"choices": [choice]}}))
    (tmp_path / "lenet5_mnist-s0-verdict.json").write_text("{}")  # another view: not read
    lines = cost_rounds.tables(cost_rounds.load(tmp_path, "lenet5_mnist", "verdict-costrounds"))
    # by cost minus by value: selection (0.1 - 0.1) / 2, test (0.15 - 0.2) / 2; positive on 1 of 2 seeds each
    assert "| 0.1 | +0.000 (-0.025), 1/2 (1/2) |" in lines
    assert "| 0.1 | 8 / 4 |" in lines
    # seed 0 picks the cost round (0.7 on test) and without it top_n (0.4); seed 1 picks rounds by value (0.5)
    # either way; the baseline scores 0.35: differences 0.35 and 0.15, t = 0.25 / (0.1414 / sqrt(2)) = 2.5 with
    # 1 degree of freedom, whose CDF is 1/2 + arctan(t) / pi
    p = 1 - 2 * np.arctan(2.5) / np.pi
    assert f"| 0.1 | 1/2 | 0.600 | 0.450 | +0.150, 1 / 0 | 0.350 | +0.250, 2/2, p = {p:.3f} |" in lines
