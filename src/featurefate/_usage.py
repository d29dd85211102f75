"""What the command line tells a user who holds it wrong: the library's messages in their words.

The library's ``ValueError`` names a parameter as the Python API spells it (``n_instances``,
``num_alpha``); the user typed a flag (``--instances``, ``--num-alpha``). :func:`command_of`
finds the command a command line runs and :func:`in_flags` rewrites a message with that
command's flags, whole words where the message speaks of the parameter: ``n_instances must be
an integer >= 2; got 1`` becomes ``--instances must be an integer >= 2; got 1``, while a config
key (``fixed.n_instances``), a longer name (``sigma_source`` for ``sigma``), a flag already
written (``--dim``) and prose (``the Dask scheduler at ...``) stay as they are.
:func:`check_phase_grid` refuses a finite-size phase-diagram grid below one sample, and
:func:`check_simulation_size` a local simulation beyond the machine's memory, in the flags'
terms. A value the command-line parser cannot read (``--dim 2.5``) is told in the same form by
:func:`unreadable_value` (``--dim must be an integer; got 2.5``), and :func:`check_out_dir`
refuses an output directory that is a file.
"""

from __future__ import annotations

import math
import os
import re

from featurefate import _memory
from featurefate import _validation as v


def _flags(*names: str, **renamed: str) -> dict[str, str]:
    """``--name`` for each of ``names`` (underscores as dashes), and the ``renamed`` ones."""
    out = {name: "--" + name.replace("_", "-") for name in names}
    return out | renamed


_THEORY = ("method", "sigma", "lam", "variant", "dim")
FLAGS: dict[str, dict[str, str]] = {
    "theory phase-diagram": _flags(*_THEORY, "alpha_max", "num_alpha", "num_theta"),
    "theory point": _flags(*_THEORY, "alpha", "theta"),
    "simulate point": _flags(
        "alpha",
        "theta",
        "sigma",
        "dim",
        "depth",
        "lam",
        "seed",
        "init_scale",
        "init",
        "alpha_source",
        "sigma_source",
        n_instances="--instances",
    ),
    "sweep": _flags("workers", "scheduler"),
    "cluster-certs": _flags("hosts", "days", "port"),
    "explore": _flags("data", "out", "port"),
    "reproduce": _flags("scale", "workers", "scheduler", "num_alpha", "num_theta"),
}
"""For each command, the flag (or argument) the user typed for each library parameter."""

# commands that group subcommands: their name and the next word name the command
_GROUPS = ("theory", "simulate")


def command_of(argv: list[str]) -> str:
    """The command a command line runs (``"theory point"``, ``"sweep"``), or ``""``.

    The root command takes no option with a value, so the first word that is not an option is
    the command (and for a group, the next such word its subcommand).
    """
    words = [arg for arg in argv if not arg.startswith("-")]
    if not words:
        return ""
    if words[0] in _GROUPS and len(words) > 1:
        return f"{words[0]} {words[1]}"
    return words[0]


# what follows a parameter's name where a message speaks of the parameter ("dim must ...",
# "alpha = 0.1", "alpha * dim", "either workers or scheduler, ...", "got method 'linear'"), not
# of the thing in prose ("the Dask scheduler at ...", "no data for figure fig6")
_AS_PARAMETER = r" must\b| only\b| applies\b| is required\b| =| \*| or\b| and\b| not\b|,|;| '"


def in_flags(message: str, command: str) -> str:
    """``message`` with every library parameter of ``command`` named by its flag: whole words,
    not inside a dotted config key, a longer name or a flag, and only where the message speaks
    of the parameter (followed by ``must``, ``=``, ``*``, ``applies``, ``or``, a comma, ...)."""
    names = FLAGS.get(command)
    if not names:
        return message
    words = "|".join(map(re.escape, names))
    pattern = rf"(?<![\w.\-])({words})(?={_AS_PARAMETER})"
    return re.sub(pattern, lambda m: names[m.group(1)], message)


def check_phase_grid(*, alpha_max: float, num_alpha: int, dim: int | None) -> None:
    """Refuse a finite-size phase diagram whose smallest alpha is below one sample.

    The grid's alpha are ``k * alpha_max / num_alpha``; with ``dim`` the finite-size forms
    need ``n = alpha * dim >= 1`` at the smallest, ``alpha_max / num_alpha``.

    Raises
    ------
    ValueError
        Naming ``--num-alpha``, ``--alpha-max`` and ``--dim``, and the largest valid
        ``--num-alpha``.
    """
    if dim is None:
        return
    dim = v.integer("--dim", dim, low=1)
    alpha_max = float(v.real_array("--alpha-max", alpha_max, low=0.0, low_open=True))
    num_alpha = v.integer("--num-alpha", num_alpha, low=1)
    smallest = alpha_max / num_alpha
    if smallest * dim < 1.0 - 1e-9:
        most = math.floor(alpha_max * dim + 1e-9)
        fix = f"take --num-alpha <= {most}" if most >= 1 else "raise --alpha-max"
        raise ValueError(
            f"--dim {dim} needs n = alpha * D >= 1 sample at the grid's smallest alpha, "
            f"--alpha-max / --num-alpha = {smallest:g} (n = {smallest * dim:g}); {fix}"
        )


def physical_memory() -> int | None:
    """Bytes of physical memory of this machine, or ``None`` where unknown."""
    return _memory.physical_memory()


def check_simulation_size(
    *, dim: int, depth: int, instances: int, alpha: float, rank_one: bool = False
) -> None:
    """Refuse a local simulation that cannot fit in this machine's memory.

    The least it holds, in float64: per instance the data ``n x D`` (``n = alpha * D``), the
    sufficient statistics ``D x D`` and, unless the layers are rank one, ``depth`` layers of
    ``D x D``.

    Raises
    ------
    ValueError
        Naming ``--dim``, ``--instances`` (and ``--depth``), the memory needed and the memory
        there is.
    """
    total = physical_memory()
    if total is None:
        return
    need = _memory.linear_bytes(
        dim=dim, depth=depth, instances=instances, n=alpha * dim, rank_one=rank_one
    )
    if need > total:
        raise ValueError(
            f"--dim {dim} with --instances {instances}"
            + ("" if rank_one else f" and --depth {depth}")
            + f" needs at least {need / 2**30:.3g} GiB, more than this machine's "
            f"{total / 2**30:.3g} GiB; choose a smaller --dim or fewer --instances"
        )


# what the command-line parser says of a value it cannot read, in the house's words
_PARSER_WORDS = {
    "valid integer": "an integer",
    "valid number": "a real number",
    "valid boolean": "a boolean",
}


def typed_value(opts: list[str], argv: list[str]) -> tuple[str, str | None]:
    """The flag of ``opts`` the user typed last in ``argv`` and the value typed with it
    (``--dim 2.5`` or ``--dim=2.5``), or the first of ``opts`` and ``None``."""
    found: tuple[str, str | None] = (opts[0] if opts else "value", None)
    for i, arg in enumerate(argv):
        for opt in opts:
            if arg == opt:
                found = (opt, argv[i + 1] if i + 1 < len(argv) else None)
            elif arg.startswith(opt + "="):
                found = (opt, arg[len(opt) + 1 :])
    return found


def unreadable_value(opts: list[str], message: str, argv: list[str]) -> str:
    """The parser's complaint about a value (``Input should be a valid integer, unable to parse
    string as an integer``) as one line naming the flag and the value typed:
    ``--dim must be an integer; got 2.5``."""
    flag, value = typed_value(opts, argv)
    got = "" if value is None else f"; got {value}"
    for words, kind in _PARSER_WORDS.items():
        if words in message:
            return f"{flag} must be {kind}{got}"
    return f"{flag}: {message[:1].lower() + message[1:]}{got}"


def check_out_dir(path, *, flag: str = "--out") -> None:
    """Refuse an output directory that exists as something else (a file).

    Raises
    ------
    ValueError
        Naming ``flag`` and the path.
    """
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"{flag} must be a directory (created if missing); got {path}, a file")
