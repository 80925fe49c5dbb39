"""What a model does: the task names model cards, bundle manifests and callers use."""
from __future__ import annotations

from edgert.core.errors import ConfigError

#: classify: class scores; detect: boxes; embed: a feature vector; ocr: text (CTC); attributes: several heads;
#: text_detect: a text probability map (DB), decoded to text quads.
TASKS = ("classify", "detect", "embed", "ocr", "attributes", "text_detect")
_ALIASES = {"classification": "classify", "detection": "detect", "embedding": "embed", "recognition": "ocr",
            "text_detection": "text_detect"}


def task_name(value, where: str = "task") -> str | None:
    """`value` as one of `TASKS` (manifest spellings such as "classification" accepted); None stays None.

    Raises:
        ConfigError: an unknown task, naming `where` and the known ones.
    """
    if value is None:
        return None
    task = _ALIASES.get(value, value) if isinstance(value, str) else value
    if task not in TASKS:
        raise ConfigError(f"{where}: unknown task {value!r}; expected one of {', '.join(TASKS)}")
    return task
