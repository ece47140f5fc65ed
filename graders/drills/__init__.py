"""Live incident drills: the incident catalogue (`incidents/*.toml`, the answer key), the
symptom observer, the fault schedule, the drill runner and interviewer console, the
recorder and the report (HTML and JSON)."""
