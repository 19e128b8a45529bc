"""Applying a compiled mapping: median microseconds per touch over 100,000 touches (target 20)."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

TARGET_US = 20.0
TOUCHES = 100_000
SHIPPED = ("marketo-salesforce", "marketo-hubspot", "hubspot-salesforce", "files-salesforce",
           "files-hubspot")  # fmt: skip


def run() -> list[str]:
    """One line per shipped mapping: median and p95 per touch, against the target."""
    from sync.mapping.catalogue import offline_catalogue
    from sync.mapping.preview import sample_cases
    from sync.mapping.validate import load_mapping

    root = Path(__file__).resolve().parent.parent / "mappings"
    lines = []
    for name in SHIPPED:
        mapping = load_mapping(root / f"{name}.yaml", offline_catalogue())
        cases = sample_cases(mapping, TOUCHES, seed=11)
        pairs = [(c.touch, c.crm_person) for c in cases]
        render = mapping.render
        clock = time.perf_counter_ns
        for touch, person in pairs[:2000]:  # warm caches
            render(touch, person)
        samples: list[int] = []
        kept: list[int] = []
        for touch, person in pairs:
            started = clock()
            out = render(touch, person)
            elapsed = clock() - started
            samples.append(elapsed)
            if out is not None:
                kept.append(elapsed)
        median = statistics.median(samples) / 1000
        # Filtered touches cost almost nothing; judge the target on the rendered ones too.
        rendered = statistics.median(kept) / 1000
        verdict = "OK" if max(median, rendered) <= TARGET_US else "OVER TARGET"
        lines.append(
            f"{name:20} median {median:5.1f} us/touch, {rendered:5.1f} us per rendered touch "
            f"({len(kept)} rendered, {TOUCHES - len(kept)} filtered; target "
            f"{TARGET_US:.0f} us) {verdict}"
        )
    return lines
