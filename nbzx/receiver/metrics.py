"""The receiver's Prometheus metrics (DESIGN.md section 9)."""

from prometheus_client import Counter, Histogram

WEBHOOKS = Counter("nbzx_webhooks_total", "Webhook deliveries by result", ["result"])
PRODUCE_SECONDS = Histogram(
    "nbzx_produce_seconds",
    "Time to produce one record and get the broker's ack",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RECONCILE_REQUESTS = Counter("nbzx_reconcile_requests_total", "Reconcile requests by result", ["result"])
