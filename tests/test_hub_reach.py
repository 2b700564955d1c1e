"""An unreachable hub: one request, no retries, then one clear line naming the hub, the cache and how to work
offline; `push_to_hub` with no network says so instead of the hub library's raw error."""
import os
import socket
import subprocess
import sys
import threading

import pytest

import tinynet_zoo as tz


class DroppingServer:
    """A local 'hub' on 127.0.0.1 that accepts each connection and closes it without an answer, counting them."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.connections = 0
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self):
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def dropping_hub():
    server = DroppingServer()
    yield server
    server.close()


def _run(code_or_cli, endpoint, cache, timeout=120):
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env.update(HF_ENDPOINT=endpoint, HF_HUB_CACHE=str(cache), HF_HUB_DISABLE_TELEMETRY="1", OMP_NUM_THREADS="1")
    argv = [sys.executable, "-c", code_or_cli] if isinstance(code_or_cli, str) else \
        [sys.executable, "-m", "tinynet_zoo.cli", *code_or_cli]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)


def test_unreachable_hub_gets_one_request_and_a_clear_error(dropping_hub, tmp_path):
    """huggingface_hub retries a missing file six times with back-off (~25 s); the zoo asks once."""
    out = _run(["info", "hf-hub:me/absent"], dropping_hub.url, tmp_path / "hub")
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tinynet-zoo: error: me/absent@main is not in the Hugging "
                                                   "Face cache"), out.stderr
    assert dropping_hub.url in lines[0] and str(tmp_path / "hub") in lines[0]
    assert "HF_HUB_OFFLINE=1" in lines[0] and "Traceback" not in out.stderr
    assert dropping_hub.connections == 1


def test_closed_port_hub_from_python_names_hub_cache_and_offline_mode(tmp_path):
    code = ("import tinynet_zoo as tz\n"
            "try:\n    tz.create('hf-hub:me/absent')\n"
            "except tz.CheckpointNotFoundError as exc:\n"
            "    print(type(exc).__name__, exc.__cause__, exc.__context__, exc, sep='|')\n")
    out = _run(code, "http://127.0.0.1:9", tmp_path / "hub")
    name, cause, context, message = out.stdout.strip().split("|", 3)
    assert (name, cause, context) == ("CheckpointNotFoundError", "None", "None"), out.stdout + out.stderr
    assert "the hub (http://127.0.0.1:9) cannot be reached (ConnectError" in message
    assert str(tmp_path / "hub") in message and "set HF_HUB_OFFLINE=1" in message


def test_unreachable_hub_still_serves_the_cache(dropping_hub, tmp_path):
    """A file already in the cache loads with the hub down, after the one probe."""
    from conftest import saved_folder_and_hub

    saved_folder_and_hub(tmp_path, tz.Twist(r=0.35, d=0.5, w=0.5, resolution=32))
    code = ("import tinynet_zoo as tz\n"
            "print(tz.create('hf-hub:me/small').num_classes)\n")
    out = _run(code, dropping_hub.url, tmp_path / "hub")
    assert out.returncode == 0 and out.stdout.strip() == "3", out.stderr
    assert dropping_hub.connections == 1


def test_push_to_hub_offline_is_a_hub_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    model = tz.create(tz.Twist(r=0.35, d=0.5, w=0.5, resolution=32), num_classes=3)
    with pytest.raises(tz.HubError, match=r"could not push to me/tiny on the hub \(.*\): the hub cannot be reached "
                                          r"\(HF_HUB_OFFLINE is set\); nothing was uploaded, push again once online "
                                          "and with HF_HUB_OFFLINE unset") as info:
        tz.push_to_hub(model, "me/tiny", token="hf_fake")
    assert isinstance(info.value, ConnectionError) and info.value.__context__ is None


def test_cli_turns_a_foreign_connection_error_into_one_line(monkeypatch, capsys):
    from tinynet_zoo.cli import catalog, main

    def no_network(args):
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(catalog, "cmd_table", no_network)
    assert main(["table"]) == 2
    err = capsys.readouterr().err
    assert err == ("tinynet-zoo: error: a server could not be reached (ConnectionRefusedError: [Errno 111] "
                   "Connection refused); check the network, or set HF_HUB_OFFLINE=1 to work from the cache\n")


def test_cli_still_raises_a_bug(monkeypatch):
    from tinynet_zoo.cli import catalog, main

    def bug(args):
        raise ZeroDivisionError("a bug, not the network")

    monkeypatch.setattr(catalog, "cmd_table", bug)
    with pytest.raises(ZeroDivisionError, match="a bug, not the network"):
        main(["table"])


def test_a_closed_output_pipe_is_not_called_a_network_failure():
    from tinynet_zoo.weights.reach import unreachable_reason

    assert unreachable_reason(BrokenPipeError(32, "Broken pipe")) is None
    assert unreachable_reason(ConnectionRefusedError(111, "Connection refused")).startswith("ConnectionRefusedError")
