"""``cnnlab train`` options as data: a JSON file for ``--config``, the settings ``cnnlab tune``
tunes and fixes. Each value is checked by the option's own argparse type, so a file or a tuned
value is held to what the command line accepts.

Keys are the options' names with ``_`` or ``-`` (``batch_size``, ``batch-size``, ``from``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cnnlab.cli.common import CLIError

__all__ = ["NOT_SETTINGS", "train_actions", "convert", "options_to_namespace", "apply_config"]

# options that say where and how a run goes, not how it trains: never in a config or a search
NOT_SETTINGS = frozenset({"out", "resume", "quiet", "config", "help"})


def _train_parser() -> argparse.ArgumentParser:
    # the option table as cli/main.py defines it (imported when called: main sits above us)
    from cnnlab.cli.main import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["train"]


def train_actions(parser: argparse.ArgumentParser | None = None) -> dict:
    """{key: argparse action} of the train settings; keys are dests and option names."""
    parser = parser or _train_parser()
    table = {}
    for action in parser._actions:
        if not action.option_strings or action.dest in NOT_SETTINGS:
            continue
        table[action.dest] = action
        for s in action.option_strings:
            table[s.lstrip("-").replace("-", "_")] = action
    return table


def convert(action: argparse.Action, value, where: str):
    """``value`` (from JSON, TOML or a sampler) as the option's own type; ValueError naming
    ``where`` when the option would refuse it."""
    flag = action.option_strings[-1]
    if action.nargs == 0:  # a switch such as --augment
        if isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        if not isinstance(value, bool):
            raise ValueError(f"{where}: {flag} is a switch, true or false; received {value!r}")
        return value
    if isinstance(action, argparse._AppendAction):  # --freeze A --freeze B
        items = value if isinstance(value, list) else [value]
        return [convert_one(action, v, where, flag) for v in items]
    if isinstance(value, (list, dict)):
        raise ValueError(f"{where}: {flag} takes one value; received {value!r}")
    return convert_one(action, value, where, flag)


def convert_one(action, value, where: str, flag: str):
    if value is None or isinstance(value, bool):
        raise ValueError(f"{where}: {flag} needs a value; received {value!r}")
    text = repr(value) if isinstance(value, float) else str(value)
    if action.type is None:
        return text
    try:
        return action.type(text)
    except (argparse.ArgumentTypeError, ValueError) as e:
        raise ValueError(f"{where}: {flag} {e}") from None


def options_to_namespace(options: dict, where: str, parser=None) -> argparse.Namespace:
    """A ``cnnlab train`` namespace (defaults as when no flag is given) with ``options`` set."""
    parser = parser or _train_parser()
    table = train_actions(parser)
    ns = argparse.Namespace(**{a.dest: a.default for a in parser._actions
                               if a.dest != "help"})
    for key, value in options.items():
        action = table.get(str(key).replace("-", "_"))
        if action is None:
            raise ValueError(f"{where}: {key!r} is not a cnnlab train setting; settings: "
                             f"{', '.join(sorted({a.dest for a in table.values()}))}")
        setattr(ns, action.dest, convert(action, value, f"{where} {key}"))
    return ns


def apply_config(args) -> None:
    """``cnnlab train --config FILE``: set every option of the JSON object in FILE that the
    command line did not give (flags win). Raises CLIError naming the file and the key."""
    from cnnlab.cli.config import read_json

    path = Path(args.config)
    try:
        # bounded, UTF-8, no NaN, nesting limited: read as config.json is
        data = read_json(path, missing="cannot read it (no such file)")
    except CLIError as e:
        raise CLIError(f"--config {e}") from None
    if not isinstance(data, dict):
        raise CLIError(f"--config {path}: must hold a JSON object of train options such as "
                       f'{{"lr": 0.001}}; received {type(data).__name__}')
    try:
        given = options_to_namespace(data, f"--config {path}")
    except ValueError as e:
        raise CLIError(str(e)) from None
    table = train_actions()
    for key in data:
        dest = table[str(key).replace("-", "_")].dest
        current = getattr(args, dest, None)
        if current is None or current is False:  # not on the command line (0 is a value)
            setattr(args, dest, getattr(given, dest))
