"""The tinynet-zoo command: subcommands, --json, one-line errors and exit codes."""
import json
import subprocess
import sys

import pytest

from tinynet_zoo.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_info_table(capsys):
    code, out, _ = run(capsys, "list", "tinynet_*")
    assert code == 0 and out.split() == [f"tinynet_{c}" for c in "abcde"]
    code, out, _ = run(capsys, "info", "tinynet_c", "--json")
    data = json.loads(out)
    assert data["macs"] == 99_536_432 and data["twist"]["w"] == 0.54
    code, out, _ = run(capsys, "table", "--json")
    assert code == 0 and len(json.loads(out)) == 12


def test_formula_command(capsys):
    code, out, _ = run(capsys, "formula", "100M", "--json")
    data = json.loads(out)
    assert code == 0 and data["budget"] == 100e6
    assert [r["formula"] for r in data["results"]] == ["tiny", "giant"]
    assert all(0.99 * 100e6 <= r["macs"] <= 100e6 for r in data["results"])
    for spelling in ("100e6", "0.1G"):
        assert run(capsys, "formula", spelling, "--json")[1] == out


@pytest.mark.parametrize("argv, match", [
    (["info", "tinynet_x"], "unknown model 'tinynet_x'; did you mean"),
    (["formula", "lots"], "cannot parse budget 'lots'"),
    (["formula", "1M"], "outside the supported range 10M to 4G"),
])
def test_errors_are_one_line(capsys, argv, match):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == "" and match in err and err.count("\n") == 1


def test_bad_flag_exits_2_without_importing_torch():
    proc = subprocess.run([sys.executable, "-m", "tinynet_zoo.cli", "table", "--bogus"], capture_output=True, text=True)
    assert proc.returncode == 2 and "unrecognized arguments: --bogus" in proc.stderr
    assert proc.stderr.count("\n") == 1
    code = "import sys, tinynet_zoo as tz; tz.list_models(); tz.cli; print('torch' in sys.modules, 'timm' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code.replace("tz.cli", "import tinynet_zoo.cli")],
                          capture_output=True, text=True)
    assert proc.stdout.split() == ["False", "False"], proc.stderr


def test_download_and_predict_offline(capsys, tmp_path):
    from PIL import Image
    from skimage import data

    code, out, _ = run(capsys, "download", "efficientnet_lite0", "--json")
    info = json.loads(out)
    assert code == 0 and info["tag"] == "efficientnet_lite0.pypi_in1k" and info["verified"]
    image = tmp_path / "espresso.png"
    Image.fromarray(data.coffee()).save(image)
    code, out, _ = run(capsys, "predict", "efficientnet_lite0", str(image), "--top", "3", "--json")
    rows = json.loads(out)
    assert code == 0 and len(rows) == 3 and rows[0]["index"] == 967 and "espresso" in rows[0]["label"]
    code, out, err = run(capsys, "predict", "efficientnet_lite0", str(tmp_path / "none.png"))
    assert code == 2 and "cannot read image" in err
    code, _, err = run(capsys, "download", "efficientnet_b-2")
    assert code == 2 and "no hosted checkpoint exists" in err


def test_sigterm_ends_a_command_like_ctrl_c_removing_its_temporary_files(tmp_path, monkeypatch, capsys):
    import argparse
    import os
    import signal
    import tempfile
    import time

    from tinynet_zoo import cli

    def work(args):  # a command writing through a hidden temporary folder, stopped by a scheduler
        with tempfile.TemporaryDirectory(dir=tmp_path, prefix=".m.pte."):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)  # the handler interrupts this
        return None, "finished"

    parser = argparse.ArgumentParser()
    parser.set_defaults(func=work, command="export", json=False)
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    before = signal.getsignal(signal.SIGTERM)
    assert cli.main([]) == 143
    assert list(tmp_path.iterdir()) == []  # the temporary folder was removed on the way out
    assert capsys.readouterr().err.strip() == "tinynet-zoo: terminated (SIGTERM)"
    assert signal.getsignal(signal.SIGTERM) is before
