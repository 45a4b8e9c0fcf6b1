"""Counters and histograms kept in plain dictionaries, rendered only when scraped.

prometheus_client's `Counter` and `Histogram` cost a `labels()` look-up, a child object and a
lock or two per update; the engine's hooks update them several times a step on the engine's
event loop, where every microsecond shows. So the server's metrics are kept here instead: a
dictionary from label values to a number (counters) or to a list of per-bucket counts and a
sum (histograms), updated with plain Python, and turned into the same metric families a
scrape of prometheus_client's own classes would give (names, HELP, TYPE, labels, buckets,
``_created``) by `Families.collect`, on the scrape's thread.

Writers hold `Families.lock` while they update (one acquisition covers a whole batch of
events), and `collect` copies the values under it, then renders without it: a scrape never
sees half an update and never holds the engine's loop for longer than a copy.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from functools import partial

from prometheus_client import metrics as _client_metrics
from prometheus_client.core import Metric
from prometheus_client.utils import floatToGoString

__all__ = ["Families", "PlainCounter", "PlainHistogram"]

Labels = tuple[str, ...]
#: How prometheus_client writes a bucket bound in `le` (untyped there, hence the annotation).
_go_float: Callable[[float], str] = floatToGoString


def _use_created() -> bool:
    """Whether prometheus_client exposes `_created` series (PROMETHEUS_DISABLE_CREATED_SERIES)."""
    return bool(getattr(_client_metrics, "_use_created", True))


class PlainCounter:
    """A counter family: label values -> count. Update it with `inc` under `Families.lock`.

    Args:
        name: the family's name without `_total` (prometheus_client's convention).
        documentation: the HELP text.
        labelnames: the label names, in the order keys give their values.
    """

    __slots__ = ("created", "documentation", "labelnames", "name", "values")

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = ()) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.values: dict[Labels, float] = {}
        self.created: dict[Labels, float] = {}
        if not self.labelnames:  # an unlabelled counter exists (at 0) from the start
            self.values[()] = 0.0
            self.created[()] = time.time()

    def inc(self, key: Labels, amount: float = 1.0) -> None:
        """Add ``amount`` to the series ``key`` (label values in `labelnames` order)."""
        values = self.values
        if key in values:
            values[key] += amount
        else:
            self.created[key] = time.time()
            values[key] = 0.0 + amount

    def snapshot(self) -> Callable[[], Metric]:
        """A copy of the values (taken under the lock), and how to render it (outside)."""
        return partial(self._metric, dict(self.values), dict(self.created))

    def _metric(self, values: dict[Labels, float], created: dict[Labels, float]) -> Metric:
        metric = Metric(self.name, self.documentation, "counter")
        with_created = _use_created()
        for key, value in values.items():
            labels = dict(zip(self.labelnames, key, strict=True))
            metric.add_sample(self.name + "_total", labels, value)
            if with_created:
                metric.add_sample(self.name + "_created", dict(labels), created[key])
        return metric


class PlainHistogram:
    """A histogram family: label values -> [count of each bucket..., sum].

    Each series is one list: ``len(bounds) + 1`` bucket counts (not cumulative; the last is
    +Inf's), then the sum of the values observed. A value goes to the first bucket whose bound
    is at least it, as in prometheus_client.

    Args:
        name: the family's name.
        documentation: the HELP text.
        labelnames: the label names, in the order keys give their values.
        bounds: the finite bucket bounds, increasing.
    """

    __slots__ = ("_le", "bounds", "created", "documentation", "labelnames", "name", "series")

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        bounds: Sequence[float],
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.bounds = tuple(float(b) for b in bounds if b != float("inf"))
        self._le = [_go_float(b) for b in self.bounds] + ["+Inf"]
        self.series: dict[Labels, list[float]] = {}
        self.created: dict[Labels, float] = {}
        if not self.labelnames:
            self._new(())

    def _new(self, key: Labels) -> list[float]:
        self.created[key] = time.time()
        counts = self.series[key] = [0.0] * (len(self.bounds) + 2)
        return counts

    def counts(self, key: Labels) -> list[float]:
        """The series ``key``'s list, made when first asked for.

        A hot loop may keep it and count into it itself, as `observe` does: add 1 at
        ``bisect_left(bounds, value)`` and the value at -1 (for a value that is not NaN).
        """
        counts = self.series.get(key)
        return self._new(key) if counts is None else counts

    def observe(self, key: Labels, value: float) -> None:
        """Count ``value`` in the series ``key`` (label values in `labelnames` order)."""
        counts = self.series.get(key)
        if counts is None:
            counts = self._new(key)
        if value == value:  # NaN falls in no bucket (as in prometheus_client), only the sum
            counts[bisect_left(self.bounds, value)] += 1
        counts[-1] += value

    def snapshot(self) -> Callable[[], Metric]:
        """A copy of the series (taken under the lock), and how to render it (outside)."""
        series = {key: list(counts) for key, counts in self.series.items()}
        return partial(self._metric, series, dict(self.created))

    def _metric(self, series: dict[Labels, list[float]], created: dict[Labels, float]) -> Metric:
        metric = Metric(self.name, self.documentation, "histogram")
        with_created = _use_created()
        bucket, count, total = self.name + "_bucket", self.name + "_count", self.name + "_sum"
        for key, counts in series.items():
            labels = dict(zip(self.labelnames, key, strict=True))
            cumulative = 0.0
            for le, n in zip(self._le, counts, strict=False):  # the last item is the sum
                cumulative += n
                metric.add_sample(bucket, {**labels, "le": le}, cumulative)
            metric.add_sample(count, dict(labels), cumulative)
            metric.add_sample(total, dict(labels), counts[-1])
            if with_created:
                metric.add_sample(self.name + "_created", dict(labels), created[key])
        return metric


class Families:
    """The families of one registry, in the order they are exposed.

    A prometheus_client collector (`collect`, `describe`): register it on the registry.

    Args:
        families: counters and histograms, in exposition order.
        settle: called by `collect` under the lock just before it copies: a writer that
            only queues its samples (to stay cheap on the engine's loop) counts them here.
    """

    def __init__(
        self,
        families: Sequence[PlainCounter | PlainHistogram],
        settle: Callable[[], None] | None = None,
    ) -> None:
        self.families = tuple(families)
        self._settle = settle
        #: Held by every writer while it updates, and by `collect` while it copies.
        self.lock = threading.Lock()

    def describe(self) -> Iterator[Metric]:
        """The families without samples, so that the registry knows their names."""
        for family in self.families:
            kind = "counter" if isinstance(family, PlainCounter) else "histogram"
            yield Metric(family.name, family.documentation, kind)

    def collect(self) -> Iterator[Metric]:
        """Every family as prometheus_client would render it, from a copy taken under the lock."""
        with self.lock:
            if self._settle is not None:
                self._settle()
            renders = [family.snapshot() for family in self.families]
        for render in renders:
            yield render()
