"""Hardware detection over a fake sysfs/dev/proc tree, and `edgert info`."""
import json

from edgert.cli.main import main
from edgert.core import hardware


def make_tree(root, *, hailo=False, apex=False, usb_ids=None, rk3588=False):
    (root / "proc/device-tree").mkdir(parents=True)
    if rk3588:
        (root / "proc/device-tree/model").write_bytes(b"Radxa ROCK 5B\x00")
        (root / "proc/device-tree/compatible").write_bytes(b"radxa,rock-5b\x00rockchip,rk3588\x00")
        (root / "sys/class/devfreq/fdab0000.npu").mkdir(parents=True)
    else:
        (root / "proc/device-tree/model").write_bytes(b"Raspberry Pi 5 Model B Rev 1.0\x00")
        (root / "proc/device-tree/compatible").write_bytes(b"raspberrypi,5-model-b\x00brcm,bcm2712\x00")
    (root / "dev").mkdir(parents=True, exist_ok=True)
    if hailo:
        (root / "dev/hailo0").write_bytes(b"")
        (root / "sys/class/hailo_chardev/hailo0").mkdir(parents=True)
    if apex:
        (root / "dev/apex_0").write_bytes(b"")
    if usb_ids:
        dev = root / "sys/bus/usb/devices/2-1"
        dev.mkdir(parents=True)
        (dev / "idVendor").write_text(usb_ids[0] + "\n")
        (dev / "idProduct").write_text(usb_ids[1] + "\n")
    return root


def test_pi5_with_hailo_and_coral(tmp_path):
    hw = hardware.detect(make_tree(tmp_path, hailo=True, apex=True, usb_ids=("18d1", "9302")))
    assert hw.board.startswith("Raspberry Pi 5")
    assert "dev/hailo0" in hw.hailo and "sys/class/hailo_chardev/hailo0" in hw.hailo
    assert hw.coral_pcie == ("dev/apex_0",)
    assert hw.coral_usb == ("2-1 (18d1:9302)",)
    assert hw.rknpu == ()


def test_unprogrammed_coral_usb_id_and_other_usb_devices(tmp_path):
    assert hardware.detect(make_tree(tmp_path, usb_ids=("1a6e", "089a"))).coral_usb == ("2-1 (1a6e:089a)",)
    other = tmp_path / "other"
    assert hardware.detect(make_tree(other, usb_ids=("046d", "c52b"))).coral_usb == ()


def test_rk3588_npu(tmp_path):
    hw = hardware.detect(make_tree(tmp_path, rk3588=True))
    assert hw.board == "Radxa ROCK 5B" and "rockchip,rk3588" in hw.soc
    assert "device-tree: rockchip,rk3588" in hw.rknpu and "sys/class/devfreq/fdab0000.npu" in hw.rknpu


def test_empty_root_has_nothing(tmp_path):
    hw = hardware.detect(tmp_path)
    assert hw.hailo == hw.coral_pcie == hw.coral_usb == hw.rknpu == ()


def test_info_json_reads_the_given_root(tmp_path, capsys):
    assert main(["info", "--json", "--root", str(make_tree(tmp_path, hailo=True))]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["hardware"]["hailo"] == ["dev/hailo0", "sys/class/hailo_chardev/hailo0"]
    assert report["backends"]["cpu"] == "usable"


def test_info_text(tmp_path, capsys):
    assert main(["info", "--root", str(make_tree(tmp_path, rk3588=True))]) == 0
    out = capsys.readouterr().out
    assert "board: Radxa ROCK 5B" in out and "backend cpu: usable" in out
