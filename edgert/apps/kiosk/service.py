"""The kiosk as the service runs it: its `AppSpec`."""
from __future__ import annotations

from edgert.apps.kiosk.config import KioskConfig
from edgert.pipeline.app import AppSpec


def _check(config) -> str:
    from edgert.apps.kiosk.checks import check_summary

    return check_summary(config)


def _build(config, context, **options):
    # The stage graph and its compiled kernels are imported only when the service starts, so that
    # `edgert config check` runs where the kernels are not built.
    from edgert.apps.kiosk.app import Kiosk

    return Kiosk(config, context, **options)


#: ``app: kiosk``: one classifier, its bins and their actuators.
APP = AppSpec("kiosk", KioskConfig, _build, lambda config: {"classifier": config.model}, _check)
