"""Ground truth a labelled source puts in frame meta, matched to the items the policy decides.

Synthetic and labelled sources tag frames with ``meta["item"]`` (the id of the item in view) and
``meta["label"]`` (its class once it is entirely in view). An item is often decided before it is
entirely in view, so its label may become known only a few frames after its decision.
"""
from __future__ import annotations

from collections import Counter, OrderedDict, deque


class GroundTruth:
    """Recent frames' item ids and the labels seen for each item.

    Args:
        keep: Frames and items remembered.
    """

    def __init__(self, keep: int = 512):
        self._frames: deque = deque(maxlen=keep)  # (seq, item id or None, label or None)
        self._labels: OrderedDict = OrderedDict()
        self._keep = keep

    def observe(self, frame) -> None:
        """Note a frame's ground truth (frames without any are ignored)."""
        meta = frame.meta
        if "item" not in meta and "label" not in meta:
            return
        item, label = meta.get("item"), meta.get("label")
        self._frames.append((frame.seq, item, label))
        if item is not None and label is not None:
            self._labels[item] = label
            self._labels.move_to_end(item)
            while len(self._labels) > self._keep:
                self._labels.popitem(last=False)

    def item_between(self, first_seq: int, last_seq: int):
        """The item id most frames in ``[first_seq, last_seq]`` show, or None."""
        ids = [item for seq, item, _ in self._frames if first_seq <= seq <= last_seq and item is not None]
        return Counter(ids).most_common(1)[0][0] if ids else None

    def label_between(self, first_seq: int, last_seq: int) -> str | None:
        """The label most frames in the range show (for sources that give labels without item ids)."""
        labels = [lab for seq, _, lab in self._frames if first_seq <= seq <= last_seq and lab is not None]
        return Counter(labels).most_common(1)[0][0] if labels else None

    def label_of(self, item) -> str | None:
        """The class of an item, once a frame showed it entirely."""
        return self._labels.get(item)
