"""Only SIGTERM starts the drain; SIGINT kills the service at once.

The mistake: the stop handler is installed for SIGTERM alone (the signal `docker stop`
sends), although SPEC §17 says "SIGINT behaves like SIGTERM". SIGINT then takes the
language's default path (in Python a KeyboardInterrupt in the main thread): the service
exits at once with a traceback, without finishing the task in flight, answering its
client, logging `"event":"shutdown"` or exiting 0. SIGTERM is handled correctly.
Patched: ``StopSignal.install``.
"""
import signal

from launch_common import patch


def _make(original):
    def install(self):
        signal.signal(signal.SIGTERM, self._handle)
    return install


patch("reference_impl.runtime.lifecycle:StopSignal.install", _make)
