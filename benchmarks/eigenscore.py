"""Exact EigenScore (slogdet) vs Efficient EigenScore (EES, N_z = 20 probes, M moments): time and error.

    python benchmarks/eigenscore.py [--repeats 3] [--moments 20 80 160]

Random Gaussian embeddings Z [K, d] (seeded). Both include building the K x K covariance (O(K^2 d)).
Prints a Markdown table per M (median time over repeats; absolute |EES - exact| and relative error,
averaged over 3 probe seeds) and, per (M, d), the smallest K at which EES is faster than the exact
log-det (none so far on CPU: "speed-up" < 1 means EES is slower).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from harness_plugins.hallucination_detectors.scores import efficient_eigenscore, eigenscore


def _time(fn, repeats: int) -> float:
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--ks", type=int, nargs="+", default=[10, 32, 64, 128, 256, 512])
    ap.add_argument("--ds", type=int, nargs="+", default=[64, 512, 2048])
    ap.add_argument("--moments", type=int, nargs="+", default=[20], help="Chebyshev moments M (paper: 20).")
    args = ap.parse_args()
    print("| M | K | d | exact ms | EES ms | speed-up | abs. error | rel. error |")
    print("|---|---|---|---|---|---|---|---|")
    crossover: dict[tuple[int, int], int | None] = {}
    for m in args.moments:
        rng = np.random.default_rng(0)  # the same embeddings for every M
        for d in args.ds:
            crossover[m, d] = None
            for k in args.ks:
                z = rng.standard_normal((k, d))
                exact = eigenscore(z)
                t_ex = _time(lambda: eigenscore(z), args.repeats)
                t_ees = _time(lambda: efficient_eigenscore(z, n_moments=m), args.repeats)
                abs_err = np.mean([abs(efficient_eigenscore(z, n_moments=m, seed=s) - exact) for s in range(3)])
                err = abs_err / abs(exact)
                if t_ees < t_ex and crossover[m, d] is None:
                    crossover[m, d] = k
                print(f"| {m} | {k} | {d} | {1e3 * t_ex:.3f} | {1e3 * t_ees:.3f} | {t_ex / t_ees:.2f} | {abs_err:.2e} "
                      f"| {err:.2e} |")
    for (m, d), k in crossover.items():
        print(f"M={m}, d={d}: EES faster from K={k}" if k else f"M={m}, d={d}: EES never faster for K <= {max(args.ks)}")


if __name__ == "__main__":
    main()
