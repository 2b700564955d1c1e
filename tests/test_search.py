"""Search machinery with a deterministic fake trainer: sampling, results file, resume, retries, analysis, CLI."""
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import tinynet_zoo as tz
from tinynet_zoo.cli import main
from tinynet_zoo.errors import ExtraNotInstalledError
from tinynet_zoo.search.analysis import pareto_front, search_report, spearman
from tinynet_zoo.search.config import SearchConfig, SearchSpace
from tinynet_zoo.search.results import RESULTS_NAME, read_results
from tinynet_zoo.search.run import run_search
from tinynet_zoo.search.sampling import trial_specs

BUDGETS = ["12M", "16M", "21M"]
SMALL = dict(base_resolution=48, epochs=1)  # B0 at 48 px is 24.0M MACs


def fake_train(twist, config):
    """Accuracy rising with r only: the paper's finding, planted."""
    return {"top1": 50 + 40 * twist.r, "latency_ms": 1.0}


def slow_fake_train(twist, config):
    time.sleep(0.4)
    return fake_train(twist, config)


def flaky_train(twist, config):
    """Fails at 36 px always, and on the first try of every trial whose marker file is missing."""
    if twist.resolution == 36:
        raise RuntimeError("out of memory (simulated)")
    marker = Path(config.data) / f".tried-{twist.resolution}-{twist.w:.4f}"
    if not marker.exists():
        marker.touch()
        raise RuntimeError("transient failure (simulated)")
    return fake_train(twist, config)


@pytest.fixture
def data(tmp_path):
    root = tmp_path / "data"
    for label in "ab":
        (root / label).mkdir(parents=True)
    return root


def _trial_lines(out):
    return [json.loads(line) for line in (Path(out) / RESULTS_NAME).read_text().splitlines()[1:]]


@pytest.mark.parametrize("base", ["efficientnet_b0", "efficientnet_lite0"])
def test_sampling_stays_in_ranges_and_lands_on_the_exact_budget(tmp_path, base):
    space = SearchSpace(r=(0.6, 1.0), d=(0.5, 1.2), w=(0.3, 1.4))
    config = SearchConfig(str(tmp_path), BUDGETS, 12, base=base, space=space, **SMALL)
    specs = trial_specs(config)
    assert len(specs) == 12 and len({s.id for s in specs}) == 12
    for spec in specs:
        t = spec.twist
        assert 0.6 - 1 / 48 <= t.r <= 1.0 and 0.5 <= t.d <= 1.2 and 0.3 <= t.w <= 1.4
        assert t.resolution == round(t.r * 48) and t.base == base
        exact = tz.Twist(t.r, t.d, t.w, t.resolution, base).macs  # recount from scratch
        assert 0.99 * spec.budget <= exact <= spec.budget
    assert [s.twist for s in trial_specs(config)] == [s.twist for s in specs]  # deterministic: resumable
    assert len({(s.twist.r, s.twist.d) for s in specs}) > 8  # and random


def test_bad_input_is_refused_with_specific_errors(tmp_path, data, monkeypatch):
    with pytest.raises(tz.BudgetError, match=r"outside efficientnet_b0's search range at 48 px: 10.0M to 24.0M"):
        run_search(data, ["30M"], 4, tmp_path / "o", **SMALL)
    with pytest.raises(tz.BudgetError, match="outside"):
        run_search(data, "5M", 4, tmp_path / "o")
    with pytest.raises(tz.InvalidArgumentError, match="trials must be an integer >= 1, got 0"):
        run_search(data, BUDGETS, 0, tmp_path / "o", **SMALL)
    with pytest.raises(tz.InvalidArgumentError, match=r"trials \(2\) must be at least the number of budgets \(3\)"):
        run_search(data, BUDGETS, 2, tmp_path / "o", **SMALL)
    (tmp_path / "file").write_text("")
    with pytest.raises(tz.InvalidArgumentError, match="search folder .* is not writable"):
        run_search(data, BUDGETS, 3, tmp_path / "file" / "out", **SMALL)
    with pytest.raises(tz.TinyNetZooError, match="does not exist"):
        run_search(tmp_path / "nope", BUDGETS, 3, tmp_path / "o", **SMALL)
    with pytest.raises(tz.InvalidArgumentError, match="unknown search backend 'dask'; accepted: local, ray"):
        run_search(data, BUDGETS, 3, tmp_path / "o", backend="dask", train_fn=fake_train, **SMALL)
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(ExtraNotInstalledError, match=r"pip install 'tinynet-zoo\[search\]'"):
        run_search(data, BUDGETS, 3, tmp_path / "o2", backend="ray", train_fn=fake_train, **SMALL)
    assert issubclass(ExtraNotInstalledError, ImportError)


def test_results_are_appended_and_recorded_trials_skipped(tmp_path, data):
    out = tmp_path / "run"
    first = run_search(data, BUDGETS, 6, out, workers=0, train_fn=fake_train, **SMALL)
    assert (first.ran, first.skipped, first.failed) == (6, 0, ())
    lines = _trial_lines(out)
    assert len(lines) == 6 and all(r["status"] == "ok" and r["attempts"] == 1 for r in lines)
    assert {"macs", "params", "latency_ms", "top1", "r", "d", "w", "resolution"} <= set(lines[0])
    again = run_search(data, BUDGETS, 6, out, workers=0, train_fn=fake_train, **SMALL)
    assert (again.ran, again.skipped) == (0, 6) and len(_trial_lines(out)) == 6
    more = run_search(data, BUDGETS, 9, out, workers=0, train_fn=fake_train, **SMALL)  # extending is allowed
    assert (more.ran, more.skipped) == (3, 6)


def test_a_results_file_from_another_config_is_refused(tmp_path, data):
    out = tmp_path / "run"
    run_search(data, BUDGETS, 3, out, workers=0, train_fn=fake_train, **SMALL)
    with pytest.raises(tz.InvalidArgumentError, match=r"different search \(epochs: 1 there, 2 now\).*start fresh"):
        run_search(data, BUDGETS, 3, out, workers=0, train_fn=fake_train, base_resolution=48, epochs=2)
    (tmp_path / "other.jsonl").write_text('{"type": "metrics"}\n')
    os.replace(tmp_path / "other.jsonl", out / RESULTS_NAME)
    with pytest.raises(tz.InvalidArgumentError, match="not a search results file"):
        run_search(data, BUDGETS, 3, out, workers=0, train_fn=fake_train, **SMALL)


def test_a_truncated_last_line_is_tolerated_and_repaired(tmp_path, data):
    out = tmp_path / "run"
    run_search(data, BUDGETS, 3, out, workers=0, train_fn=fake_train, **SMALL)
    path = out / RESULTS_NAME
    text = path.read_text()
    path.write_text(text[: len(text) - 25])  # a crash in the middle of the last append
    with pytest.warns(UserWarning, match="truncated last line"):
        summary = run_search(data, BUDGETS, 3, out, workers=0, train_fn=fake_train, **SMALL)
    assert (summary.ran, summary.skipped) == (1, 2)
    assert len(_trial_lines(out)) == 3  # every line parses again


def test_a_failing_trial_is_retried_once_then_recorded_as_failed(tmp_path, data):
    out = tmp_path / "run"
    summary = run_search(data, BUDGETS, 6, out, workers=0, train_fn=flaky_train, **SMALL)
    records = {r["id"]: r for r in _trial_lines(out)}
    failed = [r for r in records.values() if r["status"] == "failed"]
    assert failed and set(summary.failed) == {r["id"] for r in failed}
    assert all(r["attempts"] == 2 and "out of memory" in r["error"] and r["resolution"] == 36 for r in failed)
    ok = [r for r in records.values() if r["status"] == "ok"]
    assert ok and all(r["attempts"] == 2 for r in ok)  # transient failures: the retry succeeded
    assert run_search(data, BUDGETS, 6, out, workers=0, train_fn=flaky_train, **SMALL).ran == 0
    rerun = run_search(data, BUDGETS, 6, out, workers=0, train_fn=fake_train, retry_failed=True, **SMALL)
    assert rerun.ran == len(failed) and not rerun.failed
    assert all(r["status"] == "ok" for r in read_results(out)[1])  # the newest record of a trial wins


class _InterruptAfter:
    def __init__(self, n):
        self.n = n

    def __call__(self, twist, config):
        if self.n == 0:
            raise KeyboardInterrupt
        self.n -= 1
        return fake_train(twist, config)


def test_resume_after_ctrl_c(tmp_path, data):
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_search(data, BUDGETS, 6, out, workers=0, train_fn=_InterruptAfter(2), **SMALL)
    assert len(_trial_lines(out)) == 2
    resumed = run_search(data, BUDGETS, 6, out, workers=0, train_fn=fake_train, **SMALL)
    assert (resumed.ran, resumed.skipped) == (4, 2)
    assert sorted(r["id"] for r in _trial_lines(out)) == sorted(s.id for s in trial_specs(
        SearchConfig(str(data), BUDGETS, 6, **SMALL)))


def test_resume_after_killing_a_pool_search(tmp_path, data):
    """A search on the process pool killed mid-way (SIGKILL: no clean-up) resumes where it stopped."""
    out = tmp_path / "run"
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from test_search import slow_fake_train, SMALL, BUDGETS\n"
            "from tinynet_zoo.search.run import run_search\n"
            "if __name__ == '__main__':\n"
            "    run_search(sys.argv[2], BUDGETS, 9, sys.argv[3], workers=2, train_fn=slow_fake_train, **SMALL)\n")
    script = tmp_path / "run_search.py"
    script.write_text(code)
    proc = subprocess.Popen([sys.executable, str(script), str(Path(__file__).parent), str(data), str(out)])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / RESULTS_NAME).exists() and len(_trial_lines(out)) >= 2:
            break
        time.sleep(0.1)
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    workers = [int(p) for p in children.read_text().split()] if children.exists() else []
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(_trial_lines(out))
    deadline = time.monotonic() + 15  # the orphaned pool workers notice and exit
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in workers):
        time.sleep(0.2)
    alive = [pid for pid in workers if Path(f"/proc/{pid}").exists()
             and "multiprocessing" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")]
    for pid in alive:
        os.kill(pid, signal.SIGKILL)
    assert not alive, "pool workers outlived the killed search"
    assert 2 <= done < 9
    resumed = run_search(data, BUDGETS, 9, out, workers=0, train_fn=fake_train, **SMALL)
    assert resumed.skipped == done and resumed.ran == 9 - done
    assert len({r["id"] for r in _trial_lines(out)}) == len(_trial_lines(out)) == 9


def test_local_process_pool_runs_trials_in_parallel(tmp_path, data):
    summary = run_search(data, BUDGETS, 3, tmp_path / "run", workers=2, train_fn=fake_train, **SMALL)
    hosts = {r["host"] for r in _trial_lines(tmp_path / "run")}
    assert summary.ran == 3 and 1 <= len(hosts) <= 2 and str(os.getpid()) not in {h.split(":")[1] for h in hosts}


def test_pareto_front_and_spearman_known_answers():
    trials = [dict(id=i, macs=m, top1=a) for i, (m, a) in enumerate([(10, 50), (10, 60), (12, 55), (15, 70),
                                                                       (15, 65), (20, 70), (25, 80)])]
    assert [t["id"] for t in pareto_front(trials)] == [1, 3, 6]
    assert spearman([1, 2, 3, 4], [10, 20, 25, 100]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert math.isnan(spearman([1, 2, 3], [5, 5, 5])) and math.isnan(spearman([1, 2], [1, 2]))


@pytest.mark.parametrize("base", ["efficientnet_b0", "efficientnet_lite0"])
def test_report_finds_the_planted_answer_and_its_formula_serves_for_flops(tmp_path, data, base):
    out = tmp_path / "run"
    run_search(data, BUDGETS, 12, out, workers=0, train_fn=fake_train, base=base, **SMALL)
    report = search_report(out, plot=base == "efficientnet_b0")
    assert report.trials == 12 and len(report.budgets) == 3
    assert report.spearman["r"] == pytest.approx(1.0)  # accuracy planted to rise with r, and nothing else
    assert report.spearman["w"] < 0.5 and all(len(row["leaders"]) == 2 for row in report.budgets)
    assert set(report.held_out) == {"gpr", "linear"} and all(v["r_err"] >= 0 for v in report.held_out.values())
    assert base != "efficientnet_b0" or Path(report.files["plot"]).stat().st_size > 10_000
    for kind in ("formula", "formula_linear"):
        twist = tz.for_flops("15M", base=base, formula=report.files[kind])
        assert 0.99 * 15e6 <= twist.macs <= 15e6 and twist.base == base
        assert abs(twist.resolution - twist.r * 48) <= 12  # r relative to the search's 48 px
    stored = json.loads((out / "report.json").read_text())
    assert stored["spearman"]["r"] == pytest.approx(report.spearman["r"])


@pytest.mark.slow
def test_cli_search_and_report(tmp_path, data, monkeypatch, capsys):
    monkeypatch.setattr("tinynet_zoo.search.trial.proxy_train", fake_train)  # in-process trials see the patch
    out = tmp_path / "run"
    args = ["search", "--data", str(data), "--budgets", "12M,16M,21M", "--trials", "9", "--base-resolution", "48",
            "--epochs", "1", "--out", str(out), "--workers", "0", "--no-progress"]
    assert main(args) == 0
    assert "9 trial(s) run, 0 already recorded, 0 failed" in capsys.readouterr().out
    assert main(args + ["--json"]) == 0
    assert json.loads(capsys.readouterr().out)["skipped"] == 9
    assert main(["search", "report", str(out), "--no-plot"]) == 0
    assert "| 12.0M | 3 |" in capsys.readouterr().out
    assert json.loads((out / "report.json").read_text())["trials"] == 9
    assert main(["search", "--data", str(data)]) == 2
    assert "needs --budgets, --out" in capsys.readouterr().err
    assert main(["search", "--data", str(data), "--budgets", "12M", "--trials", "0", "--out", str(out)]) == 2
    assert main(["search", "report", str(tmp_path / "empty")]) == 2
    assert "no search results" in capsys.readouterr().err


def test_search_help_imports_neither_torch_nor_ray_nor_sklearn():
    code = ("import sys, contextlib, io\nfrom tinynet_zoo.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
            "    main(['search', '--help'])\n"
            "print(sorted(m for m in ('torch', 'ray', 'sklearn', 'timm') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"


def test_search_budgets_with_colliding_trial_names_are_refused():
    from tinynet_zoo.errors import BudgetError
    from tinynet_zoo.search.config import SearchConfig
    with pytest.raises(BudgetError, match="too close"):
        SearchConfig("digits", ["12M", "12.04M"], 4, base_resolution=48)
