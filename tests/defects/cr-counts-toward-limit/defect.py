r"""The \r of \r\n counted toward the frame limit.

The mistake: the size check runs on the line before the \r is stripped, so a frame of
exactly the limit followed by \r\n is refused with frame_too_large (SPEC §4: neither the
\n nor a \r just before it counts). Patched: ``FrameDecoder.feed`` strips the \r only
after comparing the length with the limit.
"""
from launch_common import patch


def _make(original):
    from reference_impl.protocol import framing

    def feed(self, data):
        if self.closed:
            return []
        self._buf += data
        out = []
        start = 0
        while True:
            nl = self._buf.find(b"\n", max(start, self._scanned))
            if nl < 0:
                break
            self._scanned = nl + 1
            if nl - start > self.max_frame_bytes:          # the \r still counted here
                return self._close(out)
            end = nl - 1 if nl > start and self._buf[nl - 1] == 0x0D else nl
            if end > start:
                out.append(framing.decode_frame(bytes(self._buf[start:end])))
            start = nl + 1
        del self._buf[:start]
        self._scanned = len(self._buf)
        if len(self._buf) > self.max_frame_bytes:
            return self._close(out)
        return out
    return feed


patch("reference_impl.protocol.framing:FrameDecoder.feed", _make)
