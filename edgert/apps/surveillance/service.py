"""The surveillance app as the service runs it: its `AppSpec`."""
from __future__ import annotations

from edgert.apps.surveillance.config import SurveillanceConfig
from edgert.pipeline.app import AppSpec


def _models(config) -> dict:
    """``{slot: ModelConfig}``: one slot per whole-frame detector, then one per model on crops (region detector
    or secondary), each named as in the config (a secondary may not share a detector's name: the config refuses
    it), so ``store:`` models of any of them are followed and swapped over the air."""
    from edgert.apps.surveillance.plan import camera_plans, detector_plans, secondary_plans

    cameras = camera_plans(config)
    slots = {name: plan.model for name, plan in detector_plans(config, cameras).items()}
    slots.update((name, plan.model) for name, plan in secondary_plans(config, cameras).items())
    return slots


def _check(config) -> str:
    """Check each detector's file is a model and every class name the config uses is one of its classes."""
    from edgert.apps.surveillance.config import check_class_names
    from edgert.core.model_files import identify
    from edgert.models.resolve import describe

    labels = {}
    for name, detector in config.detectors.items():
        info = describe(detector.path)
        identify(info.path)
        labels[name] = tuple(detector.labels) if detector.labels is not None else info.labels
    for secondary in config.secondaries.values():  # models on crops: their files must be models too
        identify(describe(secondary.path).path)
    check_class_names(config, labels)
    cameras = [c for c in config.cameras if c.enabled]
    zones = sum(len(c.zones) for c in cameras)
    lines = sum(len(c.lines) for c in cameras)
    detectors = ", ".join(f"{n} ({d.backend}, {len(labels[n])} classes)" for n, d in config.detectors.items())
    crops = "".join(f", secondary {n} ({s.kind}, {s.backend})" for n, s in config.secondaries.items())
    return f"{len(cameras)} camera(s), detectors {detectors}{crops}, {zones} zone(s), {lines} line(s)"


def snapshot_writer(config, state_dir):
    """The `SnapshotWriter` of the config's ``snapshots:`` section under `state_dir`, or None when off."""
    from edgert.journal import SnapshotWriter

    snaps = config.snapshots
    if not snaps.enabled:
        return None
    return SnapshotWriter(state_dir, snaps.dir, int(snaps.quota_mb * 2**20), snaps.jpeg_quality)


def _build(config, context, **options):
    # The stage graph and its compiled kernels are imported only when the service starts.
    from edgert.apps.surveillance.app import Surveillance

    if "snapshot" not in options:
        writer = snapshot_writer(config, context.state_dir)
        options["snapshot"] = writer.write if writer is not None else None
    return Surveillance(config, context, **options)


def _fleet_admin(config, state_dir) -> dict:
    """``{"faces": FaceAdmin}`` of the ``face_recognition:`` gallery for the fleet's ``faces.*`` commands (none
    without that section). Its models load at the first such command; the running app sees every change at its
    next match (`Gallery.refresh`)."""
    section = getattr(config, "face_recognition", None)
    if section is None:
        return {}
    from edgert.apps.surveillance.faces.admin import FaceAdmin

    return {"faces": FaceAdmin(section.gallery_path(state_dir), section.model.path, backend=section.model.backend,
                               detector=section.detector)}


#: ``app: surveillance``: cameras, shared detectors, trackers, zone and line analytics, events.
APP = AppSpec("surveillance", SurveillanceConfig, _build, _models, _check, _fleet_admin)
