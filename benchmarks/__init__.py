"""faultdrill benchmarks and reliability figures (issue 6).

Why a package of its own: the figures are measured by running the real reference through
the real grader machinery, so these modules sit beside `graders/` and `reference_impl/`
and may import both (unlike the graders, which must stay black-box). Entry points:
`python3 benchmarks/run.py` (performance) and `python3 benchmarks/reliability.py`
(robustness); the results go into BENCHMARKS.md.
"""
