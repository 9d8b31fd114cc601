"""The pruning experiment: ``run(config, workdir)``, the only reader of a config.

Split by job: ``steps`` (the workdir: the resumable step store, whose records carry a
checksum and the config hash, and one run per workdir), ``validation`` (every config field
checked before any work, target sizes, the workdir's config record), ``setup`` (the config's
network: a built-in model, or your own from ``model.factory``), ``context`` (the state a run's
steps share), ``methods`` (targets, and what every GTAP method and baseline finds, looked up in
their registries, with its kept neurons under an allocation), ``progress`` (estimation progress
saved mid-step, expected times), ``report`` (the reported variants, chosen on the selection set;
CSV, table, plots) and ``run`` (the steps in order).
"""

from gtap_jax.experiment.report import summary_table
from gtap_jax.experiment.run import run
from gtap_jax.experiment.steps import Steps, WorkdirBusyError
from gtap_jax.experiment.validation import RETRAIN_MODES, ConfigError, target_sizes, validate

__all__ = [
    "RETRAIN_MODES", "ConfigError", "Steps", "WorkdirBusyError", "run", "summary_table", "target_sizes", "validate",
]
