"""Command line: ``python -m gtap_jax.prune --config FILE.py[:variant] --workdir DIR [--config.X=V ...]``.

Also installed as the ``gtap-prune`` console script. Bad input (an unknown
field, dataset or method, a target larger than the game, missing data, a
workdir holding another config's results) ends with one ``error:`` line and
exit status 2.
"""

from __future__ import annotations

import logging
import sys

from absl import flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "experiment config file (FILE.py[:variant])", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "directory for checkpoints, steps and results (resumes there)")


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def _main(argv) -> None:
    if len(argv) > 1:
        _fail(f"unexpected arguments {argv[1:]}")
    if _CONFIG.value is None or not _WORKDIR.value:
        _fail("give --config FILE.py[:variant] and --workdir DIR")
    logging.basicConfig(level=logging.INFO, format="[gtap %(asctime)s] %(message)s", datefmt="%H:%M:%S", force=True)
    for noisy in ("absl", "jax", "orbax", "orbax.checkpoint"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from gtap_jax import experiment
    from gtap_jax.data import DataUnavailableError

    try:
        experiment.run(_CONFIG.value, _WORKDIR.value)
    except (experiment.ConfigError, DataUnavailableError) as e:
        _fail(str(e))


def main(argv: list[str] | None = None) -> None:
    """Entry point: parses the flags (one-line errors) and runs the experiment."""
    argv = sys.argv if argv is None else argv
    try:
        rest = flags.FLAGS(argv)
    except flags.Error as e:
        _fail(" ".join(line.strip() for line in str(e).splitlines() if line.strip()))
    except (KeyError, AttributeError) as e:  # a locked ConfigDict refuses a field it does not have
        _fail(f"no such config field: {str(e).strip(chr(34))} (check the --config.* overrides)")
    except (ValueError, TypeError) as e:  # raised by get_config or a badly typed override
        _fail(f"bad config: {e}")
    _main(rest)


if __name__ == "__main__":
    main()
