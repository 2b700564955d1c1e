"""backend='auto': the race's statistics on engines of known speed, its candidates, failures, and for_latency."""
import math
import time

import pytest
import torch

import tinynet_zoo as tz
from tinynet_zoo.deploy import autoselect, latency, runtime as runtime_module
from tinynet_zoo.deploy.backends import installed_backends
from tinynet_zoo.system import usable_cores

from deploy_helpers import TWIST
from conftest import require_extra

require_extra("deploy")


class Sleeper:
    """An engine that takes a known time per call."""

    def __init__(self, seconds):
        self.seconds = seconds

    def input_shape(self):
        return (None, 3, 8, 8)

    def run(self, x):
        time.sleep(self.seconds)
        return x


def test_ratio_interval_is_the_paired_geometric_mean_with_a_t_interval():
    ratio, low, high = autoselect.ratio_interval([2.0, 4.0, 2.0, 4.0], [1.0, 2.0, 1.0, 2.0])
    assert ratio == low == high == pytest.approx(2.0)  # the same ratio every round: no doubt left
    ratio, low, high = autoselect.ratio_interval([1.1, 0.9, 1.2, 1.0], [1.0, 1.0, 1.0, 1.0])
    logs = [math.log(v) for v in (1.1, 0.9, 1.2, 1.0)]
    mean = sum(logs) / 4
    half = 3.182 * (sum((v - mean) ** 2 for v in logs) / 3) ** 0.5 / 2  # t(0.975, df=3)
    assert ratio == pytest.approx(math.exp(mean)) and low == pytest.approx(math.exp(mean - half))
    assert low < 1 < high


def test_a_clearly_slower_engine_is_out_after_the_minimum_rounds(monkeypatch):
    jitter = iter([1.00, 1.03, 0.98, 1.02, 0.99, 1.01] * 10)

    def timed(calls, per_round, reverse=False):  # fast ~2 ms, slow ~20 ms, a little noise: a fake clock, no sleeping
        j = next(jitter)
        return {"fast": [0.002 * j] * per_round, "slow": [0.02 / j] * per_round}

    monkeypatch.setattr(autoselect, "one_round", timed)
    winner, engine, record = autoselect.measure_candidates({"fast": lambda: Sleeper(0.002),
                                                            "slow": lambda: Sleeper(0.02)}, time_cap_s=20)
    assert winner == "fast" and engine.seconds == 0.002 and record["rounds"] == autoselect.MIN_ROUNDS
    assert record["ratios"]["slow"]["ci95"][0] > 1 and record["ratios"]["slow"]["vs"] == "fast"
    assert record["reason"].startswith("fast won: every other candidate was slower with 95% confidence")


def test_engines_that_cannot_be_told_apart_race_until_the_cap(monkeypatch):
    rounds = []

    def alternating(calls, per_round, reverse=False):  # a and b swap 1.0 and 1.2 ms every round: a tie, for ever
        rounds.append(reverse)
        time.sleep(0.05)  # 40 rounds take longer than the cap
        fast, slow = [1.0] * per_round, [1.2] * per_round
        return {"a": fast, "b": slow} if len(rounds) % 2 else {"a": slow, "b": fast}

    monkeypatch.setattr(autoselect, "one_round", alternating)
    winner, _, record = autoselect.measure_candidates({"a": lambda: Sleeper(0), "b": lambda: Sleeper(0)},
                                                      time_cap_s=0.5)
    assert record["rounds"] == len(rounds) > autoselect.MIN_ROUNDS and rounds[:3] == [False, True, False]
    other = "b" if winner == "a" else "a"
    assert record["ratios"][other]["ci95"][0] <= 1 <= record["ratios"][other]["ci95"][1]
    assert "could not be told apart" in record["reason"] and "the 0.5 s cap" in record["reason"]


def test_a_candidate_that_fails_to_build_is_recorded_and_the_rest_race():
    def broken():
        raise RuntimeError("no C++ compiler")

    winner, _, record = autoselect.measure_candidates({"ok": lambda: Sleeper(0.001), "torch-compile": broken},
                                                      time_cap_s=1)
    assert winner == "ok" and record["failed"] == {"torch-compile": "RuntimeError: no C++ compiler"}
    with pytest.raises(tz.TinyNetZooError, match="no candidate engine could be built"):
        autoselect.measure_candidates({"torch-compile": broken})


def test_auto_from_a_module_races_every_installed_engine(tmp_path):
    from tinynet_zoo.deploy.engines.builds import ModuleBuilds
    source = runtime_module._Source(None, ModuleBuilds(tz.create(TWIST), TWIST.resolution, tmp_path))
    labels = set(runtime_module._candidates(source, runtime_module._allowed(source, None), None, 1))
    counts = sorted({1, usable_cores()})
    expected = {f"{b}:{t}" for b in ("onnxruntime", "openvino", "openvino-onnx") for t in counts}
    expected |= {"executorch", "torch", "torch-compile"}
    assert set(installed_backends()) == {"onnxruntime", "openvino", "openvino-onnx", "executorch", "torch",
                                         "torch-compile"}
    assert labels == expected  # built lazily: nothing was exported or compiled to list them
    assert list(tmp_path.iterdir()) == []
    pinned = set(runtime_module._candidates(source, runtime_module._allowed(source, None), 1, 1))
    assert {"onnxruntime:1", "openvino:1", "openvino-onnx:1"} <= pinned and "executorch" not in pinned
    assert ("torch" in pinned) == (torch.get_num_threads() == 1)  # torch races only at its own thread count


def test_candidates_limit_the_race(tmp_path):
    predictor = tz.runtime(tz.create(TWIST), candidates=["torch"], cache_dir=tmp_path)
    assert predictor.backend == "torch" and predictor.choice["candidates"] == ["torch"]


def test_for_latency_resolves_auto_on_the_first_twist_then_keeps_it(monkeypatch):
    calls = []

    class Chosen:
        backend, threads = "onnxruntime", 1

        def __call__(self, batch):
            return batch

    def fake_runtime(twist, backend, threads, cache_dir):
        calls.append((backend, threads))
        return Chosen()

    monkeypatch.setattr(latency, "runtime", fake_runtime)
    result = tz.for_latency(1e6, max_macs=20e6, runs=1, warmup=0)
    assert calls[0] == ("auto", None) and set(calls[1:]) == {("onnxruntime", 1)} and len(calls) >= 2
    assert result.backend == "onnxruntime:1"


def test_torch_compile_engine_allows_many_models_per_process_and_names_a_failure(monkeypatch):
    from tinynet_zoo.deploy.backends import RECOMPILE_LIMIT, CompiledTorchEngine

    model = tz.create(TWIST)
    monkeypatch.setattr(torch._dynamo.config, "recompile_limit", 8)
    monkeypatch.setattr(torch, "compile", lambda module: module)  # inductor's own compile takes a minute here
    engine = CompiledTorchEngine(model, TWIST.resolution)
    assert torch._dynamo.config.recompile_limit == RECOMPILE_LIMIT  # the ninth model would otherwise run eager
    assert engine.run(torch.zeros(2, 3, TWIST.resolution, TWIST.resolution).numpy()).shape == (2, 1000)

    def no_compiler(module):
        def run(x):
            raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found")
        return run

    monkeypatch.setattr(torch, "compile", no_compiler)
    with pytest.raises(tz.BackendNotInstalledError, match="torch.compile cannot compile this model here .*C\\+\\+"):
        CompiledTorchEngine(model, TWIST.resolution)
