"""Benchmarks of intersect-batch against its own emulator: ``make bench`` / ``python -m bench``.

Every scenario reports ratios measured inside one run (ours against a bound or against a
peer on the same batch and emulator), so the figures hold on a noisy machine. The
emulator always runs in its own process, so its CPU never competes with the crawler's
event loop; each scenario reports how busy the emulator was, to show it had headroom.
"""
