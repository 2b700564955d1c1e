"""for_flops timing and MAC error over 50 budgets log-spaced 10M-4G; building+tracing a module for scale."""
import statistics
import time
import warnings

import numpy as np

import tinynet_zoo as tz
from tinynet_zoo.core import arch as arch_module
from tinynet_zoo.core.formula import MAX_BUDGET, MIN_BUDGET, _land_grid


def main() -> None:
    tz.for_flops(100e6)  # import timm, load the fit
    budgets = [float(b) for b in np.geomspace(MIN_BUDGET, MAX_BUDGET, 50)]
    b0 = tz.model_info("efficientnet_b0").macs
    times, cold, errors = [], [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for budget in budgets:
            _land_grid.cache_clear()  # no landing reused from an earlier call (architecture caches kept)
            start = time.perf_counter()
            twist = tz.for_flops(budget)
            times.append(time.perf_counter() - start)
            errors.append(1 - twist.macs / budget)
            _land_grid.cache_clear()
            arch_module._ASSEMBLED.clear()  # cold: also no decoded architecture or MAC count reused
            arch_module._DECODED.clear()
            start = time.perf_counter()
            tz.for_flops(budget)
            cold.append(time.perf_counter() - start)
    tiny = [t for t, b in zip(times, budgets) if b <= b0]
    giant = [t for t, b in zip(times, budgets) if b > b0]
    start = time.perf_counter()
    model = tz.create(tz.for_flops(100e6))
    build = time.perf_counter() - start
    from tinynet_zoo.core.flops import count_macs
    arch = tz.model_info("tinynet_a").twist.arch
    start = time.perf_counter()
    for _ in range(1000):
        count_macs(arch, 192)
    count = (time.perf_counter() - start) / 1000
    print(f"for_flops over {len(budgets)} budgets: median {1e3 * statistics.median(times):.2f} ms, "
          f"max {1e3 * max(times):.2f} ms")
    print(f"  with every cache cleared before each call: median {1e3 * statistics.median(cold):.2f} ms")
    print(f"  tiny range (<= B0, {len(tiny)} budgets): median {1e3 * statistics.median(tiny):.2f} ms")
    print(f"  giant range (> B0, {len(giant)} budgets): median {1e3 * statistics.median(giant):.2f} ms")
    print(f"MAC error (1 - macs/budget): max {100 * max(errors):.3f}%, median {100 * statistics.median(errors):.3f}%, "
          f"min {100 * min(errors):.4f}%, any above budget: {any(e < 0 for e in errors)}")
    print(f"one analytic count: {1e6 * count:.0f} us; create(for_flops(100M)): {1e3 * build:.0f} ms "
          f"(ratio build/for_flops {build / statistics.median(times):.0f}x); params {sum(p.numel() for p in model.parameters())}")
    print("| budget | r | d | w | resolution | MACs | error |")
    print("|---|---|---|---|---|---|---|")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for budget in budgets[::7]:
            t = tz.for_flops(budget)
            print(f"| {budget / 1e6:.1f}M | {t.r:.3f} | {t.d:.3f} | {t.w:.3f} | {t.resolution} | {t.macs / 1e6:.2f}M | "
                  f"{100 * (1 - t.macs / budget):.2f}% |")


if __name__ == "__main__":
    main()
