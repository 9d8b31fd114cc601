"""Command line: ``python -m gtap_jax.prune --config FILE.py[:variant] --workdir DIR [--config.X=V ...]``.

Also installed as the ``gtap-prune`` console script. Bad input (a missing or
broken config file, an unknown field, a value of the wrong type or range, an
unknown dataset or method, a target larger than the game, missing or unreadable
data, a workdir that is a file, holds another config's results or is in use by
another run) ends with one ``error:`` line and exit status 2; nothing is
written to the workdir before the config has passed every check. An
unexpected internal error keeps its traceback.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from absl import flags
from ml_collections import config_flags

from gtap_jax import experiment
from gtap_jax.data import DataUnavailableError
from gtap_jax.experiment.validation import RENAMED_FIELDS

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "experiment config file (FILE.py[:variant])", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "directory for checkpoints, steps and results (resumes there)")


HELP_FLAGS = ("-h", "--help", "-help", "--helpshort", "--helpfull")
# the config fields a user sets most, shown by --help with their defaults
COMMON_FIELDS = ("seed", "data.name", "data.source", "data.path", "model.name", "model.factory", "model.checkpoint",
                 "game.layers", "game.metric", "game.masked_value", "game.eval_examples", "gtap.strategies",
                 "gtap.indices", "gtap.evaluations", "baselines", "allocations", "targets", "target_unit",
                 "retrain.modes", "retrain.seeds", "progress")


def _help() -> str:
    """The usage, the flags, the shipped configs and the common fields with their defaults."""
    from gtap_jax.configs import common

    configs = sorted(p.stem for p in Path(common.__file__).parent.glob("*.py") if p.stem not in ("__init__", "common"))
    base = common.base_config()

    def value(path):
        node = base
        for part in path.split("."):
            node = node[part]
        return tuple(node) if isinstance(node, list) else node

    fields = "\n".join(f"  --config.{path}={value(path)!r}" for path in COMMON_FIELDS)
    return f"""usage: python -m gtap_jax.prune --config FILE.py[:variant] --workdir DIR [--config.FIELD=VALUE ...]

Prunes a network with cooperative game theory and compares it with the baselines; a stopped run
resumes in its workdir.

flags:
  --config FILE.py[:variant]  the experiment config (:smoke for a run of about a minute on 2 CPU cores)
  --workdir DIR               checkpoints, finished steps and results (results.csv, results.json, plots)
  --config.FIELD=VALUE        sets one field of the config (repeatable)
  -h, --help                  this text

configs (gtap_jax/configs/): {", ".join(configs)}

fields set most (defaults of the base config; each config file sets its own):
{fields}

Every field: docs/guide.md, and gtap_jax/configs/common.py with a comment per field."""


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def _config_arg(argv: list[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
    return None


def _check_config_file(argv: list[str]) -> None:
    """A missing or unparsable config file is a one-line error (absl would print a traceback)."""
    arg = _config_arg(argv)
    if arg is None:
        return
    path = Path(arg.split(":", 1)[0])
    if not path.is_file():
        _fail(f"config file {path} not found (--config FILE.py[:variant])")
    try:
        compile(path.read_text(), str(path), "exec")
    except SyntaxError as e:
        _fail(f"config file {path} has a syntax error at line {e.lineno}: {e.msg}")
    except (OSError, UnicodeDecodeError) as e:
        _fail(f"cannot read config file {path}: {e}")


def _last_line(error: Exception) -> str:
    """The message of an error raised while loading a config (absl wraps it with the traceback)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if "Traceback" in str(error):
        return lines[-1] if lines else type(error).__name__
    return " ".join(lines)


def _main(argv) -> None:
    if len(argv) > 1:
        _fail(f"unexpected arguments {argv[1:]}")
    if _CONFIG.value is None or not _WORKDIR.value:
        _fail("give --config FILE.py[:variant] and --workdir DIR")
    logging.basicConfig(level=logging.INFO, format="[gtap %(asctime)s] %(message)s", datefmt="%H:%M:%S", force=True)
    for noisy in ("absl", "jax", "orbax", "orbax.checkpoint"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        experiment.run(_CONFIG.value, _WORKDIR.value)
    except (experiment.ConfigError, DataUnavailableError, experiment.WorkdirBusyError) as e:
        _fail(str(e))


def main(argv: list[str] | None = None) -> None:
    """Entry point: parses the flags (one-line errors) and runs the experiment."""
    argv = sys.argv if argv is None else argv
    if any(arg in HELP_FLAGS for arg in argv[1:]):
        print(_help())
        sys.exit(0)
    _check_config_file(argv)
    try:
        rest = flags.FLAGS(argv)
    except flags.Error as e:
        message = _last_line(e)
        prefix = "" if "Traceback" not in str(e) else "loading the config: "
        _fail(prefix + message)
    except (KeyError, AttributeError) as e:  # a locked ConfigDict refuses a field it does not have
        field = str(e).strip(chr(34))
        renamed = [f"--config.{old}* is now --config.{new}*" for old, new in RENAMED_FIELDS.items()
                   if any(a.startswith(f"--config.{old}") for a in argv)]
        _fail(renamed[0] if renamed else f"no such config field: {field} (check the --config.* overrides)")
    except (ValueError, TypeError) as e:  # raised by get_config or a badly typed override
        _fail(f"bad config: {e}")
    except (OSError, ImportError) as e:  # the config file could not be loaded
        _fail(f"loading the config: {_last_line(e)}")
    _main(rest)


if __name__ == "__main__":
    main()
