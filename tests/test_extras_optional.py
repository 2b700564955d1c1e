"""`pip install -e ".[dev]"` leaves out the deploy, mobile and search extras: their tests then skip, each saying
which extra to install, instead of failing."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
HIDDEN = "onnxruntime,openvino,onnx,onnxscript,executorch,ray"


@pytest.mark.slow
def test_tests_of_missing_extras_skip_with_the_extra_to_install():
    files = ["test_deploy.py", "test_deploy_auto.py", "test_deploy_bad_input.py", "test_deploy_cli.py",
             "test_deploy_mobile.py", "test_search_real.py"]
    env = dict(os.environ, TINYNET_ZOO_TEST_HIDE=HIDDEN, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-m", "",
                          *(str(TESTS / f) for f in files), "-k", "not local_backend"],
                         env=env, capture_output=True, text=True, timeout=600, cwd=TESTS.parent)
    summary = out.stdout.strip().splitlines()[-1]
    assert out.returncode == 0 and re.fullmatch(r"6 skipped, 1 deselected in .*", summary), out.stdout[-3000:]
    skips = [line for line in out.stdout.splitlines() if line.startswith("SKIPPED")]
    assert any(line.startswith("SKIPPED [4] ") and line.endswith(
        ': needs the deploy extra (onnxruntime, openvino, onnx, onnxscript not installed): pip install -e ".[deploy]"')
        for line in skips), skips
    assert any(line.startswith("SKIPPED [1] ") and line.endswith(
        ': needs the mobile extra (executorch not installed): pip install -e ".[mobile]"') for line in skips), skips
    assert any(line.startswith("SKIPPED [1] tests/test_search_real.py") and line.endswith(
        ': needs the search extra (ray not installed): pip install -e ".[search]"') for line in skips), skips
