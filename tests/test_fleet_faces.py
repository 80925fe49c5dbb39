"""faces.enrol / faces.list / faces.remove over a real mosquitto, carried out by `StoreHandler` on a real gallery."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is not installed (extra: ota)")
cv2 = pytest.importorskip("cv2")
pytest.importorskip("skimage")
from face_photos import FRAMES, make_frame
from mosquitto import Mosquitto, Subscriber, require_mosquitto

from edgert.apps.surveillance.faces.admin import FaceAdmin
from edgert.core.errors import ConfigError, GalleryError
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


# -- faces.export / faces.import: a gallery moved between two devices over the broker -------------------

A_CMD, B_CMD = "edgert/cam-a/cmd", "edgert/cam-b/cmd"
A_EVENTS, B_EVENTS = "edgert/cam-a/events", "edgert/cam-b/events"


def answer(watcher, topic, cid):
    index = watcher.wait_for(lambda t, p: t == topic and isinstance(p, dict) and p.get("id") == cid, timeout=60)
    return watcher.messages[index][1]


@pytest.fixture
def two_devices(tmp_path):
    """Devices A and B on one real broker, each with its own gallery; B's gallery is also held open the way
    the running app holds it (`open_gallery`), to see whether an import reaches it."""
    require_mosquitto()
    with Mosquitto(tmp_path / "broker") as broker:
        agents, admins = [], {}
        watcher = Subscriber(broker.port, [A_EVENTS, B_EVENTS])
        for device in ("cam-a", "cam-b"):
            admin = admins[device] = FaceAdmin(tmp_path / device / "faces.sqlite3", str(FP32), backend="cpu")
            handler = StoreHandler(EmptyStore(), None, tmp_path / device / "downloads", faces=admin)
            config = FleetConfig(enabled=True, host="127.0.0.1", port=broker.port, device_id=device,
                                 keepalive_s=10, reconnect_min_s=0.1, reconnect_max_s=0.5)
            agent = FleetAgent(config, handler)
            agent.connect()
            agents.append(agent)
        yield watcher, admins["cam-a"], admins["cam-b"]
        for agent in agents:
            agent.close()
        watcher.close()


def unit_rows(seed, n, dim):
    rows = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def import_command(cid, data: bytes, **override):
    import hashlib

    command = {"id": cid, "action": "faces.import", "npz_b64": base64.b64encode(data).decode(),
               "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    command.update(override)
    return command


def test_gallery_moves_from_device_a_to_device_b(two_devices):
    from edgert.apps.surveillance.faces.recognition import open_gallery

    watcher, a, b = two_devices
    a.enrol("Eileen Collins", [("front.jpg", make_frame(FRAMES["astronaut"])[:, :, ::-1].copy())])
    dim = a.embedder().dim
    with a.gallery() as g:
        g.add("Binh", unit_rows(1, 3, dim))
    running, why = open_gallery(b.gallery_path, b.embedder())  # B's app, already running, gallery empty
    assert why is None and running.match(unit_rows(1, 1, dim)[0]).reason == "empty"

    watcher.publish(A_CMD, {"id": "x-1", "action": "faces.export"})
    exported = answer(watcher, A_EVENTS, "x-1")
    assert exported["ok"] is True, exported
    result = exported["result"]
    assert (result["format"], result["embeddings"], result["people"]) == ("edgert-faces-1", 4, 2)
    assert result["model_id"] == a.embedder().model_id
    data = base64.b64decode(result["npz_b64"])
    import hashlib

    assert len(data) == result["size"] and hashlib.sha256(data).hexdigest() == result["sha256"]

    # The export's keys go to B as they came.
    watcher.publish(B_CMD, {"id": "x-2", "action": "faces.import",
                            **{k: result[k] for k in ("npz_b64", "sha256", "size")}})
    imported = answer(watcher, B_EVENTS, "x-2")
    assert imported["ok"] is True, imported
    assert imported["result"] == {"added": {"Eileen Collins": 1, "Binh": 3}, "embeddings": 4}
    assert b.people() == a.people()
    # The gallery B's app holds open sees the new people at its next match, without a restart.
    match = running.match(unit_rows(1, 3, dim)[2])
    assert match.name == "Binh" and match.similarity > 0.999
    running.close()


def test_tampered_or_foreign_imports_change_nothing(two_devices):
    watcher, a, b = two_devices
    dim = a.embedder().dim
    with a.gallery() as g:
        g.add("Ana", unit_rows(2, 2, dim))
    data, _, _ = a.export_bytes()
    with b.gallery() as g:
        g.add("Chi", unit_rows(3, 1, dim))
    before = b.people()

    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x01
    watcher.publish(B_CMD, {**import_command("t-1", data), "npz_b64": base64.b64encode(bytes(flipped)).decode()})
    event = answer(watcher, B_EVENTS, "t-1")
    assert event["ok"] is False and "sha256" in event["error"] and "nothing imported" in event["error"]

    watcher.publish(B_CMD, import_command("t-2", data, size=len(data) + 1))
    event = answer(watcher, B_EVENTS, "t-2")
    assert event["ok"] is False and f"holds {len(data)} bytes, the command says size {len(data) + 1}" in event["error"]

    watcher.publish(B_CMD, import_command("t-3", b"not an npz at all"))
    event = answer(watcher, B_EVENTS, "t-3")
    assert event["ok"] is False and event["error"].startswith("faces.import: not an edgert faces export")

    # Another embedding model of the same size: refused naming both models.
    import io

    def npz(model_id, names, vectors, d=dim):
        buffer = io.BytesIO()
        np.savez(buffer, format=np.array("edgert-faces-1"), model_id=np.array(model_id), dim=np.int64(d),
                 names=np.array(names), vectors=vectors)
        return buffer.getvalue()

    watcher.publish(B_CMD, import_command("t-4", npz("arcface-r50:2.0", ["Dung"], unit_rows(4, 1, dim))))
    event = answer(watcher, B_EVENTS, "t-4")
    assert event["ok"] is False
    assert "arcface-r50:2.0" in event["error"] and b.embedder().model_id in event["error"]
    # Another embedding size: both sizes and models named.
    watcher.publish(B_CMD, import_command("t-5", npz("arcface-r50:2.0", ["Dung"], unit_rows(4, 1, 512), 512)))
    event = answer(watcher, B_EVENTS, "t-5")
    assert event["ok"] is False and "size 512" in event["error"] and f"size {dim}" in event["error"]

    # The right model, but the second person's row is all zeros: the first person is not imported either.
    bad = unit_rows(5, 2, dim)
    bad[1] = 0
    watcher.publish(B_CMD, import_command("t-6", npz(b.embedder().model_id, ["Em", "Phuong"], bad)))
    event = answer(watcher, B_EVENTS, "t-6")
    assert event["ok"] is False and "'Phuong'" in event["error"] and "all-zero" in event["error"]
    assert b.people() == before


def test_export_too_large_for_mqtt_is_refused_with_its_size(two_devices):
    from edgert.fleet.commands import MAX_ENROL_PAYLOAD_BYTES, MAX_GALLERY_FILE_BYTES

    watcher, a, _ = two_devices
    dim = a.embedder().dim
    per_row = dim * 4
    n = MAX_GALLERY_FILE_BYTES // per_row + 50  # just over the cap
    with a.gallery() as g:
        g.add_many([(f"person {i}", unit_rows(i, 10, dim), None) for i in range(n // 10 + 1)])
    size = len(a.export_bytes()[0])
    assert size > MAX_GALLERY_FILE_BYTES
    watcher.publish(A_CMD, {"id": "o-1", "action": "faces.export"})
    event = answer(watcher, A_EVENTS, "o-1")
    assert event["ok"] is False
    assert f"export is {size} bytes" in event["error"] and f"more than the {MAX_GALLERY_FILE_BYTES}" in event["error"]
    assert "edgert faces export FILE" in event["error"]

    # An import of a file over the cap is refused before it is decoded, and a payload over the broker-sized
    # limit is refused unread.
    with pytest.raises(ConfigError, match="size: "):
        parse_command(json.dumps({"id": "o-2", "action": "faces.import", "npz_b64": "AAAA", "sha256": "0" * 64,
                                  "size": MAX_GALLERY_FILE_BYTES + 1}).encode())
    with pytest.raises(ConfigError, match=f"at most {MAX_ENROL_PAYLOAD_BYTES}"):
        parse_command(json.dumps({"id": "o-3", "action": "faces.import", "npz_b64": "A" * MAX_ENROL_PAYLOAD_BYTES,
                                  "sha256": "0" * 64, "size": 3}).encode())


def test_largest_export_fits_an_import_command():
    from edgert.fleet.commands import MAX_ENROL_PAYLOAD_BYTES, MAX_GALLERY_FILE_BYTES

    data = b"\xff" * MAX_GALLERY_FILE_BYTES
    payload = json.dumps(import_command("c" * 128, data)).encode()
    assert len(payload) <= MAX_ENROL_PAYLOAD_BYTES
    command = parse_command(payload)  # not refused for its size
    assert command.size == MAX_GALLERY_FILE_BYTES
    with pytest.raises(ConfigError, match="sha256: "):
        parse_command(json.dumps(import_command("x", b"abc", sha256="zz")).encode())


def test_the_service_hands_the_apps_gallery_to_the_fleet(tmp_path):
    from edgert.apps.surveillance.service import APP
    from edgert.service.config import parse_config

    cfg = ("app: surveillance\ncameras:\n  - id: cam\n    source: {kind: folder, path: /nonexistent}\n"
           "detectors:\n  people: {path: primary}\n")
    assert APP.fleet_admin(parse_config(cfg), tmp_path) == {}
    admin = APP.fleet_admin(parse_config(cfg + f"face_recognition: {{model: {{path: {FP32}, backend: cpu}}}}\n"),
                            tmp_path)["faces"]
    assert admin.gallery_path == tmp_path / "faces.sqlite3" and admin.backend == "cpu"
    handler = StoreHandler(EmptyStore(), None, tmp_path / "downloads", faces=admin)
    assert handler.faces_list() == {"people": []}


def test_an_export_that_unpacks_to_gigabytes_is_refused_unread(tmp_path):
    import io

    from edgert.apps.surveillance.faces.transfer import MAX_UNPACKED_BYTES, read_export

    buffer = io.BytesIO()
    zeros = np.zeros((MAX_UNPACKED_BYTES // 4 // 64 + 1, 64), np.float32)
    np.savez_compressed(buffer, format=np.array("edgert-faces-1"), model_id=np.array("m:1"), dim=np.int64(64),
                        names=np.array(["a"] * len(zeros)), vectors=zeros)
    data = buffer.getvalue()
    assert len(data) < 2 * 1024 * 1024  # small enough to travel in one command
    with pytest.raises(GalleryError, match=f"unpack to .* bytes, more than {MAX_UNPACKED_BYTES}; refused"):
        read_export(data, "faces.import")
    (tmp_path / "bomb.npz").write_bytes(data)
    with pytest.raises(GalleryError, match="more than"):
        read_export(tmp_path / "bomb.npz")
