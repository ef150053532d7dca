"""Experiment configuration: ``experiments.toml`` → validated :class:`Experiment` objects."""

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
from .schema import AlertSettings, DataConfig, Experiment, ModelConfig, Settings, TrainConfig

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
