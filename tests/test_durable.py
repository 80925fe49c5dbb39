"""Durable writes: a file is its old content or its whole new content, whatever happens between the steps."""
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from edgert.core import durable

CRASH_CHILD = textwrap.dedent("""
    import os, signal, sys
    from edgert.core import durable
    step = sys.argv[2]
    real = {"fsync": os.fsync, "replace": os.replace}
    def crash(*args):
        os.kill(os.getpid(), signal.SIGKILL)
    setattr(os, step, crash)  # die the moment this step starts
    durable.write_bytes(sys.argv[1], b"new content, longer than the old one" * 1000)
""")


@pytest.mark.parametrize("step", ["fsync", "replace"])
def test_a_kill_before_the_rename_leaves_the_old_file_whole(tmp_path, step):
    target = tmp_path / "probation.json"
    target.write_bytes(b"old content")
    done = subprocess.run([sys.executable, "-c", CRASH_CHILD, str(target), step])
    assert done.returncode == -signal.SIGKILL
    assert target.read_bytes() == b"old content"
    leftovers = [p.name for p in tmp_path.iterdir() if p != target]
    assert len(leftovers) == 1 and leftovers[0].startswith(".probation.json.")
    assert [p.name for p in durable.remove_leftovers(tmp_path)] == leftovers
    assert sorted(p.name for p in tmp_path.iterdir()) == ["probation.json"]


def test_a_failed_rename_removes_the_temp_file_and_keeps_the_old_content(tmp_path, monkeypatch):
    target = tmp_path / "current.json"
    target.write_text("old")

    def refuse(*_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="No space"):
        durable.write_text(target, "new")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["current.json"]


def test_an_exception_inside_the_block_writes_nothing(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError):
        with durable.atomic_file(target) as f:
            f.write(b"half")
            raise RuntimeError("the producer failed")
    assert list(tmp_path.iterdir()) == []


def test_replace_false_never_clobbers_and_mode_is_set_before_it_appears(tmp_path):
    target = tmp_path / "edgert.yaml"
    durable.write_text(target, "first", mode=0o600, replace=False)
    assert target.read_text() == "first" and (target.stat().st_mode & 0o777) == 0o600
    with pytest.raises(FileExistsError):
        durable.write_text(target, "second", replace=False)
    assert target.read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edgert.yaml"]


def test_make_parents_false_refuses_a_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError):
        durable.write_text(tmp_path / "missing" / "x.json", "{}", make_parents=False)
    assert not (tmp_path / "missing").exists()


def test_move_renames_across_directories(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "f.part").write_bytes(b"payload")
    durable.move(tmp_path / "a" / "f.part", tmp_path / "b" / "f")
    assert (tmp_path / "b" / "f").read_bytes() == b"payload" and not (tmp_path / "a" / "f.part").exists()
