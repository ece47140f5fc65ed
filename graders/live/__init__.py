"""Live fault control for a running system (`faultdrill up`, drills).

`toxics` (pure) translates Toxiproxy's JSON toxics to the fault proxy's toxics;
`system` runs a submission behind a fault proxy on every hop; `actions` holds faultdrill's
own faults beyond toxics (process control, memory damage, drifted agents, overload,
intruders, leaked connections) and `heal`; `control` is the HTTP control API (Toxiproxy's
shape plus `/faultdrill/...`); `traffic` is the seeded background traffic generator;
`state` is where a running control API leaves its address and token for the CLI;
`session` starts and stops all of them together.
"""
