"""Splitting a whole number of units (share units, cents) by integer weights, exactly.

Largest-remainder rule: each item first gets ``floor(total * weight / sum)``; the units left over
(fewer than the number of items) go one each to the items with the largest remainders; equal
remainders are broken by position, and callers pass items in (time, touch key) order, so the
earlier touch wins a tie. All arithmetic is on integers, so the parts always add up to
``total`` exactly, on every platform, and an item of weight 0 never receives a unit.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["largest_remainder"]


def largest_remainder(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` in proportion to ``weights`` (non-negative, not all 0), summing exactly."""
    weight_sum = sum(weights)
    if weight_sum <= 0:
        raise ValueError("at least one weight must be positive")
    if total < 0:
        return [-part for part in largest_remainder(-total, weights)]
    if weight_sum in weights:  # one touch takes it all (single-touch models): no division needed
        whole = [0] * len(weights)
        whole[list(weights).index(weight_sum)] = total
        return whole
    count = len(weights)
    if weights.count(weights[0]) == count:  # equal weights (linear): the first items win ties
        part, left = divmod(total, count)
        return [part + 1] * left + [part] * (count - left)
    divided = [divmod(total * weight, weight_sum) for weight in weights]
    parts = [part for part, _ in divided]
    remainders = [remainder for _, remainder in divided]
    left = total - sum(parts)
    if left:
        # A stable sort, largest remainder first: equal remainders keep their position order.
        ranked = sorted(range(count), key=remainders.__getitem__, reverse=True)
        for index in ranked[:left]:
            parts[index] += 1
    return parts
