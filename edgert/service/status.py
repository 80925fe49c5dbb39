"""The STATUS= line: what the service does now, in a few words."""
from __future__ import annotations


def streams_text(health) -> str:
    """"camera ok", or each stream that is not ok with its last error and retries."""
    parts = []
    for name, h in health.streams.items():
        if h.state == "ok":
            text = "camera ok" if len(health.streams) == 1 else f"{name} ok"
            if h.reconnects:
                text += f" (reconnected {h.reconnects}x)"
        else:
            text = f"camera {h.state}" if len(health.streams) == 1 else f"{name} {h.state}"
            if h.state == "reconnecting":
                text += f" ({h.last_error}; retry {h.failures})"
        parts.append(text)
    return ", ".join(parts)


def status_text(app, fps: float, stalled: bool) -> str:
    """STATUS= while running: rate (or the stall), the app's own words, the streams."""
    health = app.health()
    state = "STALLED, outputs safe" if stalled else f"{fps:.1f} fps"
    return f"{state}, {app.status()}, {streams_text(health)}"


def waiting_text(app) -> str:
    """STATUS= before the first frame: which stream is not there yet and why."""
    waiting = [f"{name}: {h.last_error or h.state}" for name, h in app.health().streams.items()]
    return f"waiting for the first frame ({'; '.join(waiting)})"
