"""Checks of a config against the files it names (beyond what the schema can see on its own)."""
from __future__ import annotations

from edgert.apps.kiosk.policy import Policy
from edgert.core.model_files import identify
from edgert.models.resolve import describe


def check_model_and_bins(config) -> tuple:
    """Check the model file is a readable model and the bin map names only classes it has.

    Returns:
        The class names the check used (from the config or the model card; ``()`` if unknown).

    Raises:
        ModelError: the model file is missing, unreadable or not a model.
        ConfigError: the bin map or ignore list names classes the model lacks.
    """
    info = describe(config.model.path)
    identify(info.path)
    labels = tuple(config.model.labels) if config.model.labels is not None else info.labels
    if labels:
        Policy(config.policy, labels)
    return labels


def check_summary(config) -> str:
    """`check_model_and_bins`, and what `edgert config check` says of a good kiosk config."""
    labels = check_model_and_bins(config)
    return (f"source {config.source.kind}, model {config.model.path} with {len(labels)} classes, "
            f"{len(config.actuators.devices)} actuator(s), bins {', '.join(sorted(set(config.policy.bins.values())))}")
