"""Experiment configuration: ``experiments.toml`` → validated :class:`Experiment` objects.

Importing this package does not import pydantic: the schema classes (``Experiment``,
``ModelConfig``, …) load on first use, so the app can read the experiment list before its
first frame and validate right after it (:func:`load_experiments` with ``validate=False``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .load import (
    DEFAULT_FILENAME,
    ConfigError,
    ExperimentsConfig,
    default_experiments_text,
    experiment_to_table,
    load_experiments,
    parse_override,
    validate_experiment,
)

if TYPE_CHECKING:
    from .schema import AlertSettings, DataConfig, Experiment, ModelConfig, Settings, TrainConfig

_SCHEMA_NAMES = ("AlertSettings", "DataConfig", "Experiment", "ModelConfig", "Settings", "TrainConfig")


def __getattr__(name: str) -> Any:
    """The schema classes, imported (with pydantic) when first asked for (PEP 562)."""
    if name in _SCHEMA_NAMES:
        from . import schema

        return getattr(schema, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AlertSettings",
    "DEFAULT_FILENAME",
    "ConfigError",
    "DataConfig",
    "Experiment",
    "ExperimentsConfig",
    "ModelConfig",
    "Settings",
    "TrainConfig",
    "default_experiments_text",
    "experiment_to_table",
    "load_experiments",
    "parse_override",
    "validate_experiment",
]
