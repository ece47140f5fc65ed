"""A live session: the system behind its hops, the fault actions, the traffic generator and
the control API, started together and stopped together (also on Ctrl-C or an error).

Used by `faultdrill up`, `faultdrill drill`, the demo's drill and the tests, so all of them
start and stop the same things in the same order: system, actions, control API, traffic;
stopped in reverse, each step bounded.
"""
from __future__ import annotations

import secrets

from .actions import Actions
from .control import ControlAPI, ControlServer
from .state import remove_state, write_state
from .system import LiveSystem
from .traffic import TrafficGenerator

__all__ = ["LiveSession"]


class LiveSession:
    def __init__(self, system: LiveSystem, actions: Actions, traffic: TrafficGenerator | None,
                 server: ControlServer | None, api: ControlAPI, api_token: str,
                 state_written: bool):
        self.system, self.actions, self.traffic = system, actions, traffic
        self.server, self.api, self.api_token = server, api, api_token
        self._state_written = state_written
        self._closed = False

    @classmethod
    def start(cls, submission, *, seed: int, token: str, port_base: int | None = None,
              settings=None, traffic_rate: float | None = 4.0, api_port: int | None = 0,
              write_state_file: bool = False, unsafe_no_sandbox: bool = False,
              driver=None, api_token: str | None = None) -> "LiveSession":
        """`api_port=None`: no HTTP server (the API object still works in-process)."""
        system = LiveSystem.start(submission, seed=seed, token=token, port_base=port_base,
                                  settings=settings, driver=driver,
                                  unsafe_no_sandbox=unsafe_no_sandbox)
        actions = Actions(system, seed=seed)
        traffic = server = None
        state_written = False
        api_token = api_token or secrets.token_urlsafe(24)
        try:
            if traffic_rate:
                traffic = TrafficGenerator(system.public_address("orchestrator"), token,
                                           seed=seed, rate=traffic_rate)
            api = ControlAPI(system, actions, token=api_token, traffic=traffic)
            if api_port is not None:
                server = ControlServer(api, api_port).start()
            if write_state_file and server is not None:
                write_state(server.address[1], {"token": api_token, "seed": seed,
                                                "hops": {h: list(p.address) for h, p in system.hops.items()}})
                state_written = True
            if traffic is not None:
                traffic.start()
        except BaseException:
            if traffic is not None:
                traffic.stop()
            if server is not None:
                server.close()
            actions.stop_faults()
            system.close()
            actions.close()
            raise
        return cls(system, actions, traffic, server, api, api_token, state_written)

    @property
    def api_url(self) -> str | None:
        return self.server.url if self.server else None

    def close(self):
        """Stop everything (traffic, API, fault jobs, proxies, services); the driver's
        cleanup report."""
        if self._closed:
            return None
        self._closed = True
        try:
            if self.traffic is not None:
                self.traffic.stop(timeout=3.0)
            if self.server is not None:
                if self._state_written:
                    remove_state(self.server.address[1])
                self.server.close()
            self.actions.stop_faults()
        finally:
            try:
                report = self.system.close()
            finally:
                self.actions.close()
        return report

    def __enter__(self) -> "LiveSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
