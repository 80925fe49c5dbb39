"""faces.enrol / faces.list / faces.remove over a real mosquitto, carried out by `StoreHandler` on a real gallery."""
from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is not installed (extra: ota)")
cv2 = pytest.importorskip("cv2")
pytest.importorskip("skimage")
from face_photos import FRAMES, make_frame
from mosquitto import Mosquitto, Subscriber, require_mosquitto

from edgert.apps.surveillance.faces.admin import FaceAdmin
from edgert.core.errors import ConfigError
from edgert.fleet.commands import MAX_PAYLOAD_BYTES, parse_command
from edgert.fleet.config import FleetConfig
from edgert.fleet.handler import StoreHandler
from edgert.fleet.mqtt import FleetAgent

FP32 = Path(__file__).parent / "data" / "synthetic_face_embedder_fp32.tflite"
CMD, EVENTS = "edgert/cam-1/cmd", "edgert/cam-1/events"


class EmptyStore:
    root = "/nonexistent"

    def names(self):
        return []


def jpeg_b64(name: str) -> str:
    ok, data = cv2.imencode(".jpg", np.ascontiguousarray(make_frame(FRAMES[name])[:, :, ::-1]))
    assert ok
    return base64.b64encode(data.tobytes()).decode()


def result_for(cid):
    return lambda topic, p: topic == EVENTS and isinstance(p, dict) and p.get("id") == cid


@pytest.fixture
def device(tmp_path):
    require_mosquitto()
    with Mosquitto(tmp_path / "broker") as broker:
        admin = FaceAdmin(tmp_path / "faces.sqlite3", str(FP32), backend="cpu")
        handler = StoreHandler(EmptyStore(), None, tmp_path / "downloads", faces=admin)
        config = FleetConfig(enabled=True, host="127.0.0.1", port=broker.port, device_id="cam-1", keepalive_s=10,
                             reconnect_min_s=0.1, reconnect_max_s=0.5)
        watcher = Subscriber(broker.port, [EVENTS])
        agent = FleetAgent(config, handler)
        agent.connect()
        yield watcher, admin
        agent.close()
        watcher.close()


def test_enrol_list_remove_over_mqtt(device):
    watcher, admin = device
    image = jpeg_b64("astronaut")
    assert len(image) > MAX_PAYLOAD_BYTES  # a photo is larger than any other command may be
    watcher.publish(CMD, {"id": "f-1", "action": "faces.enrol", "name": "Eileen Collins",
                          "images": [{"label": "front.jpg", "jpeg_b64": image}]})
    event = watcher.messages[watcher.wait_for(result_for("f-1"), timeout=60)][1]
    assert event["ok"] is True and event["result"] == {"name": "Eileen Collins", "added": 1, "embeddings": 1}
    watcher.publish(CMD, {"id": "f-2", "action": "faces.enrol", "name": "Nobody",
                          "images": [{"label": "cup.jpg", "jpeg_b64": jpeg_b64("coffee")}]})
    event = watcher.messages[watcher.wait_for(result_for("f-2"), timeout=60)][1]
    assert event["ok"] is False and event["error"].startswith("cup.jpg: no face found")
    watcher.publish(CMD, {"id": "f-3", "action": "faces.enrol", "name": "Nobody",
                          "images": [{"label": "junk.jpg", "jpeg_b64": "!!not base64!!"}]})
    event = watcher.messages[watcher.wait_for(result_for("f-3"), timeout=60)][1]
    assert event["ok"] is False and "junk.jpg: jpeg_b64 is not base64" in event["error"]
    watcher.publish(CMD, {"id": "f-4", "action": "faces.list"})
    event = watcher.messages[watcher.wait_for(result_for("f-4"), timeout=60)][1]
    assert event["result"] == {"people": [{"name": "Eileen Collins", "embeddings": 1}]}
    watcher.publish(CMD, {"id": "f-5", "action": "faces.remove", "name": "Eileen Collins"})
    event = watcher.messages[watcher.wait_for(result_for("f-5"), timeout=60)][1]
    assert event["ok"] is True and event["result"]["removed"] == 1
    assert admin.people() == []


def test_faces_commands_are_validated():
    with pytest.raises(ConfigError, match="images: "):
        parse_command(b'{"id": "x", "action": "faces.enrol", "name": "a", "images": []}')
    with pytest.raises(ConfigError, match="colour: unknown key"):
        parse_command(b'{"id": "x", "action": "faces.list", "colour": 1}')
    big = b'{"id": "x", "action": "faces.list", "pad": "' + b"x" * MAX_PAYLOAD_BYTES + b'"}'
    with pytest.raises(ConfigError, match="at most 65536"):
        parse_command(big)
    handler = StoreHandler(EmptyStore(), None, Path("/tmp"))
    with pytest.raises(ConfigError, match="no face recognition"):
        handler.faces_list()
