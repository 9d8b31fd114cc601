"""Fields shared by every experiment config, each commented; experiment files override them."""

import ml_collections

from gtap_jax.models import MODELS


def base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0  # the only seed: data split, init, training order, estimator draws, retraining seeds
    c.progress = True  # progress bars (does not affect results; may change between resumed runs)
    # measure each pruned network's latency beside the dense one's (jitted, batch 256, median of 20 calls; the
    # latency_ms columns of results.csv; measured again when a run resumes)
    c.latency = False

    c.data = ml_collections.ConfigDict()
    c.data.name = "mnist"  # mnist | twitter_financial_news_topic | emotion | tiny_imagenet
    c.data.source = ""  # "" = the data set's default (mnist: embedded offline subset); tfds | hf | path
    c.data.path = ""  # local file or folder when source = "path"
    c.data.options = ml_collections.ConfigDict()  # extra loader arguments, e.g. vocab_size for text sets

    c.model = ml_collections.ConfigDict()
    c.model.name = "lenet300"  # lenet300 | lenet5 | text_mlp | alexnet
    c.model.options = ml_collections.ConfigDict()  # extra model arguments, e.g. width for alexnet
    # your own trained Flax model instead (experiment/setup.py): "package.module:function" returning a
    # Linen or NNX module (called with model.options), its orbax checkpoint (Linen variables or NNX state,
    # gtap_jax.experiment.setup.save_checkpoint writes one) and the keyword arguments of every call
    c.model.factory = ""
    c.model.checkpoint = ""
    c.model.apply_kwargs = ml_collections.ConfigDict()  # e.g. {"train": False}

    c.train = ml_collections.ConfigDict()
    c.train.epochs = 10  # epochs of the original training (Adam)
    c.train.batch_size = 128  # examples per step
    c.train.learning_rate = 1e-3  # Adam learning rate

    c.game = ml_collections.ConfigDict()
    c.game.layers = ("fc1", "fc2")  # prunable layers whose neurons are the players
    c.game.layerwise = False  # False: one game over all layers; True: one game per layer (our AlexNet setup)
    # accuracy | neg_loss: the coalition value the indices are estimated on (results report test accuracy
    # either way). neg_loss (mean negative cross-entropy) by default: two keys agree far more at the same
    # budget (benchmarks/RESULTS.md, "Settled decisions"), since accuracy moves in steps of 1 / examples.
    c.game.metric = "neg_loss"
    c.game.masked_value = "zero"  # zero | mean: what a silenced neuron outputs
    c.game.eval_examples = 0  # examples of the validation split the game is played on (0 = all but the selection set)
    # the last validation examples, never in the game: the reported GTAP variant and baseline are chosen on them
    # (highest accuracy per regime and target), and the test set only reports the choice (0 = no selection)
    c.game.selection_examples = 0
    c.game.dtype = "float32"  # float32 | bfloat16: precision of each coalition's forward pass (see README)
    c.game.chunk_size = 0  # coalitions per compiled call (0 = as many as fit in memory, at most 4096)

    c.bands = ml_collections.ConfigDict()
    c.bands.keep_fractions = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)  # grid of q
    c.bands.num_samples = 256  # random Bernoulli(q) coalitions per q
    c.bands.rule = "max_std"  # how d is chosen: max_std (our reading) | min_keep_within
    c.bands.tolerance = 0.01  # for min_keep_within: allowed drop of the mean below v(all)

    _methods(c)
    return c


def _methods(c: ml_collections.ConfigDict) -> None:
    """The GTAP and baseline methods, the targets and the retraining of a config."""
    c.gtap = ml_collections.ConfigDict()
    c.gtap.strategies = ("top_n", "iterated_pruning", "iterated_building")  # GTAP strategies to run
    c.gtap.indices = ("shapley", "banzhaf", "beta")  # power indices to rank neurons by
    # estimator per index: shapley permutation | antithetic | owen (4 complementary pairs of stars, shares
    # stratified) | kernel; banzhaf, beta msr | paired | regression; banzhaf also complementary (paired stars at
    # T and its complement) | kernel_banzhaf (regression on T and its complement) ("" = the library default,
    # gtap_jax.indices.default_estimator: where the game values stars incrementally and a round buys 64 paired
    # draws, owen for shapley, complementary for banzhaf and paired for beta; else permutation for shapley, in
    # settled mode permutation or antithetic as a pilot on the first round's game finds (indices/pilot.py; shapley
    # "pilot" asks for that pilot in settled mode where the default would be owen), and
    # (at >= 5 evaluations per player per round) kernel_banzhaf for banzhaf and regression for beta, else msr)
    c.gtap.estimators = ml_collections.ConfigDict({"shapley": "", "banzhaf": "", "beta": ""})
    c.gtap.d = 0.0  # d of beta_d in (0, 1); 0 = choose it from the uncertainty bands
    # coalition values per estimation round (samples = this / draw size); 0 = settled mode: each
    # round samples until its decision is settled at confidence 1 - delta up to epsilon
    c.gtap.evaluations = 0
    c.gtap.delta = 0.05  # settled mode: the chance that a settled decision is wrong by more than epsilon
    c.gtap.epsilon = 0.1  # settled mode: near-ties, as a share of the game's mean neuron part |v(all) - v(none)| / P
    c.gtap.max_evaluations = 8192  # settled mode: the cap of a round (it ends unsettled there, and says so)
    c.gtap.focus = True  # settled mode: aim draws at the neurons still unsure (indices/focus.py)
    c.gtap.stop_share = 1.0  # settled mode: a round ends once this share of its neurons is settled, in (0, 1]
    # coalition values between saved estimator states within one round (0 = save whole rounds only);
    # a stopped run resumes from the last save, with the same result
    c.gtap.checkpoint_every = 65536
    c.gtap.step = 0.5  # iterated strategies: fraction (or int count) of neurons dropped/added per round
    # iterated strategies also run with rounds that drop (add) the players of least (most) value per parameter or
    # FLOP at the current widths, their decisions settled on that ratio: `<strategy>/<index>@cost` (a joint game;
    # the unit is target_unit's, params where targets count players)
    c.gtap.cost_rounds = False

    c.baselines = ("wmp", "wgmp", "random", "lottery")  # baselines at the same neuron granularity
    # how score-based methods (the baselines but the lottery ticket, and GTAP's top_n) choose among groups, each
    # run under every one given: proportional (each layer its share) | global (one ranking) | cost (score per
    # parameter or FLOP; gtap_jax.strategies.allocation). () = each method's own: the baselines proportional,
    # GTAP its game's (global in a joint game); iterated strategies keep their game's (see gtap.cost_rounds)
    c.allocations = ()

    c.targets = (0.5, 0.3, 0.2, 0.1, 0.05)  # keep fractions (floats in (0, 1]; 1.0 = all) or counts (ints)
    # what a target counts: players | params | flops (then targets are fractions of the whole network's parameters
    # or FLOPs, and every method keeps the most players whose smaller network fits that budget)
    c.target_unit = "players"

    c.retrain = ml_collections.ConfigDict()
    c.retrain.modes = ("none", "scratch")  # none | scratch (compacted net from random init) | finetune
    c.retrain.seeds = 2  # seeds of every retraining (band over seeds in the plot)
    c.retrain.epochs = 5  # epochs of clean-slate retraining (and of each lottery-ticket level)
    c.retrain.finetune_epochs = 2  # epochs of fine-tuning, when "finetune" is a mode
    # retrain (scratch, finetune) only the GTAP method and the baseline that the selection set picks without
    # retraining, at each target (needs game.selection_examples)
    c.retrain.selected_only = False


def smoke(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Shrinks a config to an end-to-end run of under a minute on 2 CPU cores."""
    c.train.epochs = 1
    c.game.eval_examples = 200
    c.bands.keep_fractions = (0.2, 0.5, 0.8)
    c.bands.num_samples = 32
    c.gtap.evaluations = 256
    c.gtap.indices = ("beta",)  # lenet300's smoke adds shapley: one smoke run covers each index per strategy
    c.gtap.step = 0.75  # few rounds: each round plays a new sub-game, which compiles anew
    c.targets = (0.2,)
    c.retrain.seeds = 1
    c.retrain.epochs = 1
    return c


def text_mlp_config(dataset: str, arg: str | None) -> ml_collections.ConfigDict:
    """The 3 x 256 text MLP (our reconstruction) on binary term-frequency vectors of ``dataset``.

    Players: the 768 hidden units of the three layers, in one game.
    """
    c = base_config()
    c.data.name = dataset
    c.data.source = "hf"
    c.data.options = {"vocab_size": 5000}  # binary term-frequency vocabulary size
    c.model.name = "text_mlp"
    c.game.layers = ("fc1", "fc2", "fc3")
    c.train.epochs = 5
    c.targets = (0.5, 0.3, 0.2, 0.1)
    if arg == "smoke":
        smoke(c)
        c.data.options = {"vocab_size": 1000}
        # a dense MLP like LeNet-300-100, whose smoke run covers wgmp and the lottery ticket on dense layers
        c.baselines = ("wmp", "random")
    elif arg == "verdict":  # 500 validation tweets for the game, 500 for the selection set
        dense_verdict(c, targets=(0.5, 0.3, 0.2, 0.1), eval_examples=500, selection_examples=500)
        # fc1 feeds a Dense layer: draws valued incrementally, and focused draws would compile anew for each
        # sub-game (lenet300_mnist); a round's cap is 4x the whole-coalition default, not LeNet-300-100's 16x, so
        # a seed fits the time of a run on 2 CPU cores (at 1 << 17, one 768-player round of top_n took 36-69 s
        # beside another run, and an iterated strategy plays several such rounds per index)
        c.gtap.max_evaluations = 1 << 15
        c.gtap.focus = False
    elif arg:
        raise ValueError(f"unknown variant {arg!r}; use '', 'verdict' or 'smoke'")
    c.lock()
    return c


def verdict(c: ml_collections.ConfigDict, *, targets: tuple[float, ...], modes: tuple[str, ...],
            eval_examples: int = 256, selection_examples: int = 244) -> None:
    """The protocol of a config whose rows are verdicts (docs/method.md, "Choices and verdicts"): the game plays on
    the first ``eval_examples`` validation examples (by default 256 of MNIST's 500), a selection set of the last
    ``selection_examples`` (the other 244) chooses the reported GTAP variant and baseline per regime and target,
    the test set only scores the two. Targets are ``targets`` shares of the parameters; every score-based method
    runs under the proportional, global and cost allocations; GTAP runs ``top_n`` and iterated pruning (iterated
    building, which can empty a layer, is left out); ``modes`` retrain only the selected pair (fine-tuning: one
    epoch from the kept weights)."""
    c.game.eval_examples = eval_examples
    c.game.selection_examples = selection_examples
    c.gtap.strategies = ("top_n", "iterated_pruning")
    c.allocations = ("proportional", "global", "cost")
    c.target_unit = "params"
    c.targets = targets
    c.retrain.modes = modes
    c.retrain.finetune_epochs = 1
    c.retrain.selected_only = True


def dense_verdict(c: ml_collections.ConfigDict, *, targets: tuple[float, ...], **examples) -> None:
    """:func:`verdict` for the MNIST and tweet configs (LeNet-300-100, LeNet5, the text MLPs), retrained after
    pruning as well: candidates Shapley, Banzhaf (d = 0.5, what the bands' rule picks on LeNet-300-100) and beta_d
    at d = 0.8 and 0.95; baselines weight magnitude, weight x gradient, the gate, leave-one-out, random units and
    the lottery ticket."""
    c.gtap.indices = ("shapley", "banzhaf", "beta_0.8", "beta_0.95")
    # Shapley's estimator as in the runs of docs/reproduction_runs (permutations or antithetic orders, a pilot
    # choosing): the library default would now take Owen sampling on games whose stars are valued incrementally
    # (LeNet-300-100, and the tweet MLPs' later iterated rounds), which changes the draws and so the kept sets.
    c.gtap.estimators.shapley = "pilot"
    c.baselines = ("wmp", "wgmp", "gate", "loo", "random", "lottery")
    verdict(c, targets=targets, modes=("none", "finetune", "scratch"), **examples)


def one_shot_config(model: str, arg: str | None, *, epochs: int, baselines: tuple[str, ...],
                    smoke_options: dict, options: dict | None = None) -> ml_collections.ConfigDict:
    """A built-in Linen model with residual links (``model`` with ``options``) on MNIST, pruned one-shot and
    fine-tuned; a caller sets other data.

    Players: every coupled group and head layer its ``groups()`` names, silenced with zeros (a group's
    feature is absent, not a mean). Every coalition runs the whole network (no chains): on a CPU, fewer
    examples, fewer band samples, a lower cap and two strategies. Targets are budgets of parameters; every
    score-based method (GTAP's top_n and the baselines) runs under the proportional, global and cost
    allocations. The reported GTAP variant (strategy, index, d, allocation) and baseline (scores,
    allocation) are the ones of highest accuracy on 244 validation images the game never sees, per target
    and regime; fine-tuning (one epoch from the kept weights) runs for those two only. d of beta_d is among
    the candidates (0.8, 0.9, 0.95) rather than set by a bands rule: on these networks no keep fraction
    of the bands comes within ``bands.tolerance`` of the intact network, so ``min_keep_within`` falls back
    to the top of its grid, which is no rule. ``:smoke`` shrinks the model to ``smoke_options``.
    """
    c = base_config()
    c.model.name = model
    c.model.options = dict(options or {})
    c.game.layers = MODELS[model](10, **c.model.options).groups()
    c.game.masked_value = "zero"
    c.train.epochs = epochs
    c.bands.num_samples = 64
    c.gtap.indices = ("banzhaf", "beta_0.8", "beta_0.9", "beta_0.95")  # candidates; the selection set chooses
    c.gtap.max_evaluations = 2048
    c.baselines = baselines
    verdict(c, targets=(0.9, 0.8, 0.7), modes=("none", "finetune"))  # one-shot pruning of nets this small
    c.retrain.seeds = 1
    c.latency = True
    if arg == "smoke":  # one allocation, no fine-tuning: vit_mnist's smoke covers the rest
        smoke(c)
        c.model.options = dict(smoke_options)
        c.game.layers = MODELS[model](10, **smoke_options).groups()
        c.gtap.indices = ("beta_0.9",)
        c.game.selection_examples = 100
        c.allocations = ("global",)
        c.retrain.modes = ("none",)
        c.retrain.selected_only = False
        c.targets = (0.6,)
    elif arg:
        raise ValueError(f"unknown variant {arg!r}; use '' or 'smoke'")
    c.lock()
    return c
