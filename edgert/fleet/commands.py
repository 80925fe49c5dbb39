"""Fleet commands: the JSON payloads on ``<prefix>/<device>/cmd``, validated before anything runs.

A command is one JSON object::

    {"id": "c-17", "action": "install", "name": "waste", "version": "1.3.0",
     "url": "https://fleet.example/waste-1.3.0.tar", "sha256": "<64 hex>", "size": 123456}
    {"id": "c-18", "action": "activate", "name": "waste", "version": "1.2.0"}
    {"id": "c-19", "action": "rollback", "name": "waste"}
    {"id": "c-20", "action": "faces.enrol", "name": "Nguyen Van A",
     "images": [{"label": "front.jpg", "jpeg_b64": "<base64 of the JPEG or PNG bytes>"}]}
    {"id": "c-21", "action": "faces.list"}
    {"id": "c-22", "action": "faces.remove", "name": "Nguyen Van A"}
    {"id": "c-23", "action": "faces.export"}
    {"id": "c-24", "action": "faces.import", "npz_b64": "<base64 of an edgert-faces-1 NPZ>",
     "sha256": "<64 hex of the NPZ>", "size": 20736}

``faces.enrol`` carries the images themselves (base64 of the encoded file), never a path on the device:
a remote caller must not make the device read its own files. ``faces.export`` answers with the gallery's
export file in its result (``npz_b64``, ``sha256``, ``size``, ``embeddings``, ``people``, ``model_id``),
and ``faces.import`` carries such a file back in: a result can be forwarded to another device as it is.
The gallery travels inline, not by URL as a bundle does, because it is small (a 128-d embedding is
512 bytes) and the export is itself an MQTT message: no file server is needed on either side. An export
file may be up to `MAX_GALLERY_FILE_BYTES`, so that its base64 fits one command; a larger gallery is
refused by ``faces.export`` with its size (move it with ``edgert faces export`` / ``import`` instead).

``faces.enrol`` and ``faces.import`` payloads may be up to `MAX_ENROL_PAYLOAD_BYTES` (the broker must
take messages that large: mosquitto's ``message_size_limit`` is unlimited by default); every other
command up to `MAX_PAYLOAD_BYTES`.

Unknown keys, wrong types (no coercion: ``"size": "12"`` is refused) and missing fields are refused with
one line naming the key.
"""
from __future__ import annotations

import json
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from edgert.core.errors import ConfigError

#: Payloads larger than this are refused unread (a command is a few hundred bytes).
MAX_PAYLOAD_BYTES = 64 * 1024
#: faces.enrol carries photos: a few JPEGs of a face.
MAX_ENROL_PAYLOAD_BYTES = 4 * 1024 * 1024
#: The largest gallery export file that travels over MQTT: its base64 plus the command's other keys (or the
#: result event's) stay within `MAX_ENROL_PAYLOAD_BYTES`.
MAX_GALLERY_FILE_BYTES = (MAX_ENROL_PAYLOAD_BYTES - 4096) // 4 * 3
ACTIONS = ("install", "activate", "rollback", "faces.enrol", "faces.list", "faces.remove", "faces.export",
           "faces.import")
#: Actions whose payload may exceed `MAX_PAYLOAD_BYTES` (up to `MAX_ENROL_PAYLOAD_BYTES`).
LARGE_ACTIONS = ("faces.enrol", "faces.import")

_ID = Field(..., min_length=1, max_length=128, description="Caller's id, echoed in the result event")
_NAME = Field(..., pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=64, description="Model name (bundle slug)")
_VERSION = Field(..., pattern=r"^\d+\.\d+\.\d+$", description="Semantic version, e.g. 1.2.3")


class _Command(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class InstallCommand(_Command):
    """Download a bundle, verify it and install it into the model store."""

    id: str = _ID
    action: Literal["install"] = Field(..., description="The action")
    name: str = _NAME
    version: str = _VERSION
    url: str = Field(..., pattern=r"^https?://\S+$", max_length=2048, description="http(s) URL of the bundle")
    sha256: str = Field(..., pattern=r"^[0-9a-fA-F]{64}$", description="sha256 of the bundle file (hex)")
    size: int | None = Field(None, ge=0, description="Size of the bundle file in bytes, when known")


class ActivateCommand(_Command):
    """Make an installed version the current one."""

    id: str = _ID
    action: Literal["activate"] = Field(..., description="The action")
    name: str = _NAME
    version: str = _VERSION


class RollbackCommand(_Command):
    """Go back to the previous version of a model."""

    id: str = _ID
    action: Literal["rollback"] = Field(..., description="The action")
    name: str = _NAME


class EnrolImage(_Command):
    """One photo of a faces.enrol command."""

    label: str = Field(..., min_length=1, max_length=128, description="Name of the image (said in refusals)")
    jpeg_b64: str = Field(..., min_length=4, description="The encoded image (JPEG or PNG), base64")


class FacesEnrolCommand(_Command):
    """Enrol a person in the face gallery from photos (one face each)."""

    id: str = _ID
    action: Literal["faces.enrol"] = Field(..., description="The action")
    name: str = Field(..., min_length=1, max_length=128, description="The person's name")
    images: list[EnrolImage] = Field(..., min_length=1, max_length=32, description="Photos of the person")


class FacesListCommand(_Command):
    """List the people in the face gallery."""

    id: str = _ID
    action: Literal["faces.list"] = Field(..., description="The action")


class FacesRemoveCommand(_Command):
    """Forget a person from the face gallery."""

    id: str = _ID
    action: Literal["faces.remove"] = Field(..., description="The action")
    name: str = Field(..., min_length=1, max_length=128, description="The person's name")


class FacesExportCommand(_Command):
    """Answer with the face gallery's export file (base64, with its sha256 and size)."""

    id: str = _ID
    action: Literal["faces.export"] = Field(..., description="The action")


class FacesImportCommand(_Command):
    """Add the embeddings of a gallery export file (another device's ``faces.export``) to the gallery."""

    id: str = _ID
    action: Literal["faces.import"] = Field(..., description="The action")
    npz_b64: str = Field(..., min_length=4, description="The edgert-faces-1 export file, base64")
    sha256: str = Field(..., pattern=r"^[0-9a-fA-F]{64}$", description="sha256 of the export file (hex)")
    size: int = Field(..., ge=1, le=MAX_GALLERY_FILE_BYTES, description="Size of the export file in bytes")


Command = (InstallCommand | ActivateCommand | RollbackCommand | FacesEnrolCommand | FacesListCommand
           | FacesRemoveCommand | FacesExportCommand | FacesImportCommand)

_COMMAND = TypeAdapter(Annotated[Command, Field(discriminator="action")])


def parse_command(payload: bytes) -> Command:
    """The command in `payload`.

    Raises:
        ConfigError: One line: not JSON, not an object, unknown action, or the first invalid key.
    """
    if len(payload) > MAX_ENROL_PAYLOAD_BYTES:
        raise ConfigError(f"command: payload of {len(payload)} bytes, at most {MAX_ENROL_PAYLOAD_BYTES}")
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigError(f"command: not JSON ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"command: expected a JSON object, got {type(data).__name__}")
    if "action" not in data:
        raise ConfigError(f"command: action: missing ({', '.join(ACTIONS)})")
    if data["action"] not in ACTIONS:
        raise ConfigError(f"command: action: unknown action {data['action']!r} ({', '.join(ACTIONS)})")
    if data["action"] not in LARGE_ACTIONS and len(payload) > MAX_PAYLOAD_BYTES:
        raise ConfigError(f"command: payload of {len(payload)} bytes, at most {MAX_PAYLOAD_BYTES}")
    try:
        return _COMMAND.validate_python(data)
    except ValidationError as e:
        raise ConfigError(f"command: {_first_error(e)}") from None


def command_id(payload: bytes) -> str | None:
    """The ``"id"`` of a payload that may be invalid (to answer a refused command), or None."""
    if len(payload) > MAX_ENROL_PAYLOAD_BYTES:
        return None
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    value = data.get("id") if isinstance(data, dict) else None
    return value if isinstance(value, str) and 0 < len(value) <= 128 else None


def _first_error(error: ValidationError) -> str:
    """``"<key path>: <message>"`` of the first validation error (the union's tag left out)."""
    first = error.errors(include_url=False)[0]
    loc = [str(part) for part in first["loc"]]
    if loc and loc[0] in ACTIONS:
        loc = loc[1:]
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    elif first["type"] == "missing":
        message = "missing"
    return f"{'.'.join(loc) or 'command'}: {message}".splitlines()[0]
