"""Read ``experiments.toml``, apply ``--set section.key=value`` overrides, validate.

Every failure is a :class:`ConfigError` whose message names the file, the experiment
and the key at fault (and the line for TOML syntax errors); the CLI prints it and
exits with code 2.

pydantic and the schema are imported only when a file is validated: with
``load_experiments(path, validate=False)`` the file is read and its structure checked
(the same errors as a full load, up to the schema), and the schema validation runs on
first use of ``.experiments[name]``, ``.settings``, ``.get`` or :meth:`ExperimentsConfig.validate`
— the app's first frame does not wait for it.
"""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from ..errors import TuiLabError

if TYPE_CHECKING:
    from pydantic import ValidationError

    from .schema import Experiment, ExperimentsFile, Settings

DEFAULT_FILENAME = "experiments.toml"
DEFAULT_RUNS_DIR = "runs"
"""``[settings] runs_dir`` when the file does not set it (= ``Settings.runs_dir``'s default)."""
MAX_FILE_BYTES = 4 * 1024 * 1024


class ConfigError(TuiLabError):
    """A config file or override that cannot be used; ``str(err)`` is the user message."""


def default_experiments_text() -> str:
    """The ``experiments.toml`` shipped inside the package (written by ``tui-lab init``)."""
    from importlib import resources  # here: it imports tempfile, shutil, lzma… (≈ 6 ms of every start)

    return resources.files("tui_lab.config").joinpath("default_experiments.toml").read_text("utf-8")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found (run `tui-lab init` to write the default one)") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a TOML file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(f"{path}: {len(raw):,} bytes is too large for an experiments file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start} is invalid)") from None
    if "\x00" in text:
        raise ConfigError(f"{path}: contains NUL bytes: not a TOML text file")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: TOML syntax error: {exc}") from None


def _loc_to_key(loc: tuple[Any, ...]) -> tuple[str | None, str]:
    """Turn a pydantic error location into (experiment name, dotted key)."""
    parts = [str(p) for p in loc]
    if parts[:1] == ["experiments"] and len(parts) >= 2:
        rest = [p for p in parts[2:] if not p.startswith("function-")]
        return parts[1], ".".join(rest) or "(the experiment table)"
    return None, ".".join(parts) or "(top level)"


def format_validation_error(path: Path | str, err: "ValidationError") -> str:
    """One line per problem: ``FILE: experiment 'NAME': key 'model.d_model': message``."""
    lines = []
    for e in err.errors(include_url=False):
        exp, key = _loc_to_key(e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        elif e["type"] == "missing":
            msg = "required key is missing"
        where = f"experiment '{exp}': " if exp else ""
        got = ""
        if e["type"] not in ("missing",) and "input" in e and not isinstance(e["input"], dict):
            got = f" (got {e['input']!r})"
        lines.append(f"{path}: {where}key '{key}': {msg}{got}")
    return "\n".join(lines)


def parse_override(text: str) -> tuple[str, Any]:
    """Parse ``section.key=value``; the value is read as a TOML value, else as a string.

    >>> parse_override("train.lr=1e-3")
    ('train.lr', 0.001)

    Raises:
        ConfigError: when there is no ``=`` or the key is not ``section.key``.
    """
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected section.key=value, e.g. train.lr=3e-4")
    key, _, value = text.partition("=")
    key = key.strip()
    if not key or any(not part.strip() for part in key.split(".")) or "." not in key:
        raise ConfigError(f"--set {text!r}: the key must be section.key, e.g. data.path or train.max_steps")
    try:
        parsed = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()
    return key, parsed


REPLACES = {"train.batch_size": "train.global_batch_size", "train.global_batch_size": "train.batch_size"}
"""Keys that exclude each other: ``--set`` of one drops the other from the file's table
(unless the same command line sets both, which the schema then refuses)."""


def apply_overrides(raw_exp: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of one experiment's raw table with ``--set`` overrides applied."""
    out = copy.deepcopy(raw_exp)
    keys = [parse_override(text)[0] for text in overrides]
    for key in keys:
        partner = REPLACES.get(key)
        if partner and partner not in keys:
            section, leaf = partner.split(".")
            if isinstance(out.get(section), dict):
                out[section].pop(leaf, None)
    for text in overrides:
        key, value = parse_override(text)
        *sections, leaf = key.split(".")
        node = out
        for section in sections:
            nxt = node.setdefault(section, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"--set {text!r}: '{section}' is not a table")
            node = nxt
        node[leaf] = value
    return out


class _LazyExperiments(Mapping[str, "Experiment"]):
    """The experiments of a file not validated yet: names (iteration, ``in``, ``len``) from
    the TOML; looking one up validates the whole file first (raises :class:`ConfigError`)."""

    def __init__(self, cfg: "ExperimentsConfig"):
        self._cfg = cfg

    def __iter__(self) -> Iterator[str]:
        return iter(self._cfg.names)

    def __len__(self) -> int:
        return len(self._cfg.names)

    def __contains__(self, name: object) -> bool:
        return name in self._cfg.raw["experiments"]

    def __getitem__(self, name: str) -> "Experiment":
        return self._cfg.validate()[name]


class ExperimentsConfig:
    """An experiments file: ``.experiments`` (name → :class:`Experiment`), ``.settings`` and
    ``.path``; ``.raw`` keeps the TOML tables for overrides.

    Made by :func:`load_experiments`; when it was read with ``validate=False``, the schema
    validation runs on first use of an experiment or the settings (or :meth:`validate`),
    and raises the :class:`ConfigError` a full load would have raised.
    """

    def __init__(self, path: Path, raw: dict[str, Any], parsed: "ExperimentsFile | None" = None):
        self.path = path
        self.raw = raw
        self._parsed = parsed

    @property
    def validated(self) -> bool:
        """Whether the schema validation has run (and passed)."""
        return self._parsed is not None

    def validate(self) -> dict[str, "Experiment"]:
        """Validate the file now if not yet done; return name → :class:`Experiment`.

        Raises:
            ConfigError: schema errors, each naming the file, experiment and key.
        """
        if self._parsed is None:
            self._parsed = _validate_file(self.path, self.raw)
        return self._parsed.experiments

    @property
    def experiments(self) -> Mapping[str, "Experiment"]:
        if self._parsed is None:
            return _LazyExperiments(self)
        return self._parsed.experiments

    @property
    def settings(self) -> "Settings":
        self.validate()
        assert self._parsed is not None
        return self._parsed.settings

    @property
    def runs_dir(self) -> str:
        """``[settings] runs_dir`` as written (before validation: the raw string, or the
        default when it is missing or not a string; validation reports a bad one)."""
        if self._parsed is not None:
            return self._parsed.settings.runs_dir
        value = self.raw.get("settings", {}).get("runs_dir") if isinstance(self.raw.get("settings"), dict) else None
        return value if isinstance(value, str) else DEFAULT_RUNS_DIR

    @property
    def names(self) -> list[str]:
        return list(self.raw["experiments"])

    def get(self, name: str, overrides: list[str] | None = None) -> "Experiment":
        """The experiment ``name`` with ``--set`` overrides applied and re-validated.

        Raises:
            ConfigError: unknown experiment, or an override that makes it invalid.
        """
        if name not in self.raw["experiments"]:
            known = ", ".join(self.names) or "none"
            raise ConfigError(f"{self.path}: no experiment named {name!r} (known: {known})")
        experiments = self.validate()
        if not overrides:
            return experiments[name]
        table = apply_overrides(self.raw["experiments"][name], overrides)
        return validate_experiment(table, name, source=f"{self.path} (with --set)")


def _inject_names(raw: dict[str, Any]) -> dict[str, Any]:
    data = dict(raw)
    exps = data.get("experiments")
    if isinstance(exps, dict):
        data["experiments"] = {
            name: ({**table, "name": name} if isinstance(table, dict) else table)
            for name, table in exps.items()
        }
    return data


def validate_experiment(table: dict[str, Any], name: str, source: str = "<config>") -> "Experiment":
    """Validate one experiment's raw table (e.g. a run's saved ``config.json``)."""
    from pydantic import ValidationError

    from .schema import ExperimentsFile

    try:
        parsed = ExperimentsFile.model_validate({"experiments": {name: {**table, "name": name}}})
    except ValidationError as err:
        raise ConfigError(format_validation_error(source, err)) from None
    return parsed.experiments[name]


def _validate_file(path: Path, raw: dict[str, Any]) -> "ExperimentsFile":
    from pydantic import ValidationError

    from .schema import ExperimentsFile

    try:
        parsed = ExperimentsFile.model_validate(_inject_names(raw))
    except ValidationError as err:
        raise ConfigError(format_validation_error(path, err)) from None
    from .sweep import check_sweep  # sweep.py builds on this module

    for name, exp in parsed.experiments.items():
        if exp.sweep:  # every grid point is checked like a --set override
            check_sweep(raw["experiments"][name], name, source=str(path))
    return parsed


def load_experiments(path: Path | str | None = None, validate: bool = True) -> ExperimentsConfig:
    """Load and validate an experiments file (``./experiments.toml`` by default).

    Args:
        validate: ``False`` reads the file and checks its structure now and leaves the schema
            validation (and the pydantic import) to the first use of an experiment or the
            settings, or to :meth:`ExperimentsConfig.validate` (the app calls it right after
            its first frame); the errors are the same either way.
    Raises:
        ConfigError: missing file, TOML syntax error (with line), or schema errors,
            each naming the file, experiment and key.
    """
    path = Path(path) if path is not None else Path(DEFAULT_FILENAME)
    raw = _read_toml(path)
    if "experiments" not in raw:
        raise ConfigError(f"{path}: no [experiments.NAME] tables: nothing to run")
    if not isinstance(raw["experiments"], dict) or not raw["experiments"]:
        raise ConfigError(f"{path}: key 'experiments' must hold at least one [experiments.NAME] table")
    cfg = ExperimentsConfig(path, raw)
    if validate:
        cfg.validate()
    return cfg


RUN_ONLY_KEYS = ("name", "sweep")
"""Keys of a run's ``config.json`` that are not experiment keys: ``name``, and ``sweep`` (the
run's sweep record ``{id, overrides, set}``, not a grid: see :mod:`tui_lab.config.sweep`)."""


def experiment_to_table(exp: "Experiment") -> dict[str, Any]:
    """The resolved experiment as a plain dict (saved with each run as ``config.json``).

    The experiment's ``sweep`` grid and seed-log ``reference`` are left out: a run is one
    point of a sweep (its record is added by the trainer), and the reference belongs to the
    experiments file."""
    return exp.model_dump(mode="json", exclude={"sweep", "reference"})


def experiment_of_table(table: dict[str, Any], name: str, source: str = "<config>") -> "Experiment":
    """Validate a run's saved ``config.json`` table (its :data:`RUN_ONLY_KEYS` dropped).

    Raises:
        ConfigError: the table is not a valid experiment (the message names ``source`` and the key).
    """
    return validate_experiment({k: v for k, v in table.items() if k not in RUN_ONLY_KEYS}, name, source)
