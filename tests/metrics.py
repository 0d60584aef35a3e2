"""Reading Prometheus metrics in tests: a metric or label that is not exposed is an error, never 0."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def metric_value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`, in a /metrics page.

    0 when the metric is exposed but no sample has these label values yet (a counter not yet
    counted); AssertionError when no metric `name` is exposed, or it has no label of a given name.
    """
    families = {f.name: f for f in text_string_to_metric_families(text)}
    family = families.get(name) or families.get(name.removesuffix("_total"))
    assert family is not None, f"metric {name} is not exposed (exposed: {sorted(families)})"
    known = {k for s in family.samples for k in s.labels}
    unknown = set(labels) - known
    assert not family.samples or not unknown, f"metric {name} has no label {sorted(unknown)} (labels: {sorted(known)})"
    return sum(
        s.value for s in family.samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )
