"""What a SIGHUP changes: nothing, the app in place (a swapped model), or a rebuild of the whole app."""
from __future__ import annotations

from edgert.core.errors import EdgertError
from edgert.models.reference import model_path

#: Sections the service itself reads: any change there rebuilds the app.
SERVICE_SECTIONS = ("app", "service", "store", "probation", "fleet")


def model_fingerprints(spec, config) -> dict:
    """``{slot: (path, size, mtime)}`` of the model files a config names (a file replaced in place is a change)."""
    prints = {}
    for slot, model in spec.models(config).items():
        try:
            path = model_path(model.path)
            st = path.stat()
        except (OSError, EdgertError):
            prints[slot] = (model.path,)
            continue
        prints[slot] = (str(path), st.st_size, st.st_mtime_ns)
    return prints


def reload_action(old, new, old_prints: dict, new_prints: dict) -> str:
    """"unchanged", "in_place" (the app may apply it live, `App.reconfigure`) or "rebuild"."""
    if any(getattr(old, s) != getattr(new, s) for s in SERVICE_SECTIONS):
        return "rebuild"
    if old == new and old_prints == new_prints:
        return "unchanged"
    return "in_place"
