"""The error-rate alert fires only when the error rate is strictly above the threshold.

The mistake: an off-by-one at the alert threshold of SPEC §8.3 ("if `error_permille >= E`
an alert of kind `error_rate`"): the comparison is `>`, the reading of "alert when the
error rate exceeds the threshold", so a service exactly at E per mille (50 with the
default thresholds) raises no alert and its task may report ok instead of degraded.
Seeded inputs seldom land exactly on E. Everything else (the latency alert, severity,
status, summary) is right. Patched: the ``report`` step the agents run (the entry of
``reference_impl.work.STEPS``, replaced in place so every holder of the table sees it).
"""
from launch_common import patch


def _make(steps):
    from reference_impl.work.report import _alert

    def report(payload):
        analysis = payload["analysis"]
        error_threshold = int(payload["thresholds"]["error_permille"])
        latency_threshold = int(payload["thresholds"]["p95_latency_ms"])
        alerts = []
        for stats in analysis["services"]:
            permille, p95 = int(stats["error_permille"]), int(stats["p95_latency_ms"])
            if permille > error_threshold:                 # the mistake: SPEC says >=
                alerts.append(_alert(stats["service"], "error_rate", permille, error_threshold))
            if p95 >= latency_threshold:
                alerts.append(_alert(stats["service"], "latency", p95, latency_threshold))
        if any(a["severity"] == "critical" for a in alerts):
            status = "critical"
        elif alerts:
            status = "degraded"
        else:
            status = "ok"
        total, n_services = int(analysis["total"]), len(analysis["services"])
        return {"source": analysis["source"], "status": status, "alerts": alerts,
                "summary": f"{total} events from {n_services} services; {len(alerts)} alerts; status {status}"}

    steps["report"] = report
    return steps


patch("reference_impl.work:STEPS", _make, expect=dict)
