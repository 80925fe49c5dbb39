"""`Detections` and `Tracks` count rows with len(); NamedTuple's `_replace`/`_make` must still work."""
import copy
import pickle

import numpy as np
import pytest

from edgert.postprocess.detections import Detections
from edgert.tracking.results import Tracks


def _detections(n: int) -> Detections:
    return Detections(np.arange(n * 4, dtype=np.float32).reshape(n, 4), np.linspace(1, 0.5, n, dtype=np.float32),
                      np.arange(n, dtype=np.int32))


def _tracks(n: int) -> Tracks:
    return Tracks(np.arange(1, n + 1, dtype=np.int64), np.zeros((n, 4), np.float32), np.ones(n, np.float32),
                  np.zeros(n, np.int32), np.arange(n, dtype=np.intp))


@pytest.mark.parametrize("n", [0, 1, 3, 4, 5, 7])  # 4 and 5: as many rows as fields, which used to pass
def test_detections_replace_and_make(n):
    d = _detections(n)
    r = d._replace(scores=d.scores * 0.5)
    assert type(r) is Detections and len(r) == n
    np.testing.assert_array_equal(r.scores, d.scores * 0.5)
    assert r.boxes is d.boxes and r.keypoints is None
    assert Detections._make(tuple.__iter__(d)).classes is d.classes
    assert len(Detections.empty(num_keypoints=2)._replace(keypoints=None)) == 0
    with pytest.raises(TypeError, match="expected 4 values, got 3"):
        Detections._make([d.boxes, d.scores, d.classes])


@pytest.mark.parametrize("n", [0, 2, 5, 6])
def test_tracks_replace_and_make(n):
    t = _tracks(n)
    r = t._replace(ids=t.ids + 10)
    assert type(r) is Tracks and len(r) == n and r.det_index is t.det_index
    np.testing.assert_array_equal(r.ids, t.ids + 10)
    with pytest.raises(TypeError, match="expected 5 values"):
        Tracks._make(list(tuple.__iter__(t)) + [None])


def test_copies_and_pickles_keep_rows():
    d = _detections(3)
    for c in (copy.copy(d), copy.deepcopy(d), pickle.loads(pickle.dumps(d))):
        assert type(c) is Detections and len(c) == 3
        np.testing.assert_array_equal(c.boxes, d.boxes)
