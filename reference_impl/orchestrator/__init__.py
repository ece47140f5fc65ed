"""The orchestrator: routing, the retrying pipeline, the agent client, the task table and
its dashboard. ``pipeline``, ``backoff``, ``routing`` and ``dashboard`` are pure;
``client`` and ``service`` are the edges that touch sockets and threads.
"""
