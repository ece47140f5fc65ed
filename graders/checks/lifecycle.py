"""Stage 10, tls-shutdown: graceful SIGTERM drain, TLS and mutual TLS.

Why separate deployments for TLS: TLS changes how every service listens, so it runs in
its own topology started with the TLS variables; certificates come from a throw-away CA
generated with `cryptography` for each run. The grader and the services may share no
filesystem (containers), so the files reach each service through the driver
(`Deployment.place_file`), and the service certificate names every address the
orchestrator may dial: loopback, the driver's `proxy_host` (where the fault proxies
listen) and the role names (agents reached directly on a container network).
"""
from __future__ import annotations

import datetime
import ipaddress
import ssl
import tempfile
import threading
import time
from pathlib import Path

from graders import oracle
from graders.checks.common import (expect_ok, first_difference, redact, submit, wait_for_logs)
from graders.checks.registry import CheckFailed, check
from graders.client import BadReply, ClientTimeout, Connection, ConnectionClosed, make_request
from graders.faults.proxy import Latency


@check(id="shutdown.sigterm_drain", title="SIGTERM drains the in-flight task and exits 0",
       items=["shutdown_health.shutdown"], weight=1, stage=10, challenge="tls-shutdown")
def sigterm_drain(ctx):
    """A task is mid-pipeline (collect and analyze replies slowed 150 ms each) when the
    orchestrator gets SIGTERM: the client still receives submit_ok with the right result,
    the process logs event shutdown and exits 0 within FD_SHUTDOWN_GRACE_MS + 1 s. Then
    the same with SIGINT (SPEC §17: SIGINT behaves like SIGTERM)."""
    dep = ctx.deployment
    _drain_on(ctx, "SIGTERM", dep.signal_term)
    _drain_on(ctx, "SIGINT", dep.signal_int)


def _drain_on(ctx, name: str, send_signal) -> None:
    """One drain: `send_signal("orchestrator")` while a task is in flight, the checks of
    sigterm_drain's docstring, then the orchestrator started again."""
    topo = ctx.topo
    dep = ctx.deployment
    grace = int(topo.settings.get("FD_SHUTDOWN_GRACE_MS", 5000)) / 1000
    task_input = oracle.generate_input(ctx.rng, 10)
    tid = ctx.task_id()
    proxy = topo.agent_proxy["collector"]
    n0 = len(proxy.events)
    t1 = proxy.add(Latency(latency_ms=150, stream="downstream"))
    t2 = topo.agent_proxy["analyzer"].add(Latency(latency_ms=150, stream="downstream"))
    box = {}
    log_start = len(dep.logs("orchestrator", "stderr"))
    hint = "On SIGTERM and SIGINT stop accepting, but finish and answer what was already received."

    def client():
        try:
            box["r"] = submit(ctx, tid, task_input, direct=True, timeout=10.0)
        except Exception as exc:  # noqa: BLE001 - reported below
            box["e"] = exc

    th = threading.Thread(target=client, daemon=True)
    try:
        th.start()
        started = proxy.wait_for(lambda evs: any(e.kind == "frame" and e.direction == "upstream"
                                                 and isinstance(e.frame, dict) and e.frame.get("task_id") == tid
                                                 for e in evs[n0:]), 5.0)
        if not started:
            raise CheckFailed("the task never reached the collector", expected="a collect request")
        send_signal("orchestrator")
        ctx.note("fault", f"{name} to the orchestrator while a task is in flight")
        t0 = time.monotonic()
        code = dep.wait("orchestrator", grace + 1.0)
        elapsed = time.monotonic() - t0
        th.join(5.0)
    finally:
        proxy.remove(t1)
        topo.agent_proxy["analyzer"].remove(t2)
    ctx.note("reaction", f"orchestrator exited with {code} after {elapsed:.2f} s")
    if "e" in box or "r" not in box:
        raise CheckFailed(f"after {name}, the in-flight task's client got no reply during the drain",
                          expected="submit_ok", received=str(box.get("e", "no reply")), hint=hint)
    req, reply = box["r"]
    p = expect_ok(reply, "submit", sent=req, token=ctx.token,
                  what=f"the in-flight task during shutdown on {name}", hint=hint)
    if first_difference(oracle.expected_result("triage", task_input), p.get("result")):
        raise CheckFailed(f"the task drained on {name} must have the right result", received=p)
    if code is None:
        raise CheckFailed(f"after {name} the orchestrator did not exit within the grace period "
                          f"({grace:.1f} s + 1 s)", hint=hint)
    if code != 0:
        raise CheckFailed(f"after a clean drain on {name} the exit status must be 0", expected=0,
                          received=code, hint=hint)
    if not wait_for_logs(ctx, "orchestrator", log_start, lambda r: r.get("event") == "shutdown"):
        raise CheckFailed(f"on {name} the orchestrator must log event shutdown",
                          expected='"event": "shutdown"', hint=hint)
    dep.start("orchestrator", None)
    topo.wait_ready(5.0)


# --- TLS -------------------------------------------------------------------------------
def make_pki(directory: Path, hosts: tuple[str, ...] = ()) -> dict[str, Path]:
    """A CA, a service certificate for 127.0.0.1/localhost and `hosts` (IP addresses or
    DNS names; server and client auth) and a separate client certificate; PEM files in
    `directory`. Also the impostors a correct peer must refuse: `rogue-service` (the same
    names, signed by another CA), `rogue-client` (a client certificate of that other CA)
    and `wronghost` (signed by the right CA, for a name no agent address has)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def key():
        return ec.generate_private_key(ec.SECP256R1())

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def make_ca(cn):
        k = key()
        cert = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(name(cn))
                .public_key(k.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                             content_commitment=False, key_encipherment=False, data_encipherment=False,
                                             key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(k.public_key()), critical=False)
                .sign(k, hashes.SHA256()))
        return k, cert

    ca_key, ca = make_ca("faultdrill test CA")
    # Same subject name as the real CA: only the signature tells them apart.
    rogue_key, rogue_ca = make_ca("faultdrill test CA")

    def leaf(cn, sans, ca=ca, ca_key=ca_key):
        k = key()
        b = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(ca.subject)
             .public_key(k.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False))
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return k, b.sign(ca_key, hashes.SHA256())

    sans: list = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    for host in hosts:
        try:
            entry = x509.IPAddress(ipaddress.ip_address(host))
        except ValueError:
            entry = x509.DNSName(host)
        if entry not in sans:
            sans.append(entry)
    svc_key, svc = leaf("faultdrill service", sans)
    cli_key, cli = leaf("faultdrill client", [])
    rogue_svc_key, rogue_svc = leaf("faultdrill service", sans, rogue_ca, rogue_key)
    rogue_cli_key, rogue_cli = leaf("faultdrill client", [], rogue_ca, rogue_key)
    wrong_key, wrong = leaf("wrong-host.invalid", [x509.DNSName("wrong-host.invalid"),
                                                   x509.IPAddress(ipaddress.ip_address("192.0.2.1"))])
    out = {}

    def write(fname, data):
        p = directory / fname
        p.write_bytes(data)
        out[fname] = p

    pem = serialization.Encoding.PEM
    write("ca.pem", ca.public_bytes(pem))
    write("service.pem", svc.public_bytes(pem))
    write("client.pem", cli.public_bytes(pem))
    write("rogue-service.pem", rogue_svc.public_bytes(pem))
    write("rogue-client.pem", rogue_cli.public_bytes(pem))
    write("wronghost.pem", wrong.public_bytes(pem))
    for fname, k in (("service.key", svc_key), ("client.key", cli_key), ("rogue-service.key", rogue_svc_key),
                     ("rogue-client.key", rogue_cli_key), ("wronghost.key", wrong_key)):
        write(fname, k.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return out


TLS_FILES = {"FD_TLS_CERT": ("service.pem", 0o444), "FD_TLS_KEY": ("service.key", 0o400),
             "FD_TLS_CA": ("ca.pem", 0o444)}


def _tls_topology(ctx, directory: Path, *, client_auth: bool):
    """(topology, pki): a fresh deployment, deployed without starting; a PKI naming the
    addresses this deployment dials; the PEM files placed for every service through the
    driver; then every service started with the TLS variables pointing at them."""
    from graders.manifest import ROLES
    from graders.topology import Topology
    topo = Topology.up(ctx.env.submission, ctx.env.driver, seed=ctx.seed, token=ctx.token,
                       env_overrides=dict(ctx.env.env_overrides), start=False)
    ctx.env.track(topo)
    try:
        dep = topo.deployment
        # The grader dials each service at its endpoint (a container address under the
        # Docker driver's isolated network), the orchestrator dials proxy_host or a role.
        pki = make_pki(directory, hosts=(dep.proxy_host, *ROLES,
                                         *(dep.endpoint(role).host for role in ROLES)))
        env: dict[str, dict[str, str]] = {}
        for role in ROLES:
            env[role] = {var: dep.place_file(role, f"tls/{fname}", pki[fname].read_bytes(),
                                             mode=mode)
                         for var, (fname, mode) in TLS_FILES.items()}
            env[role]["FD_TLS_CLIENT_AUTH"] = "1" if client_auth else "0"
        topo.start_all(env=env)
    except BaseException:
        topo.close()    # at once: do not keep a half-started deployment until the end
        raise
    return topo, pki


def _client_ctx(pki, with_cert: bool, *, cert: str = "client") -> ssl.SSLContext:
    c = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki["ca.pem"]))
    c.minimum_version = ssl.TLSVersion.TLSv1_2
    if with_cert:
        c.load_cert_chain(str(pki[f"{cert}.pem"]), str(pki[f"{cert}.key"]))
    return c


def _plaintext_refused(ep, token) -> str | None:
    """None when a plaintext hello gets no protocol reply; else what came back."""
    try:
        with Connection(ep.host, ep.port, timeout=2.0) as c:
            reply = c.request(make_request("hello", {"versions": [1], "role": "orchestrator"}, token=token),
                              timeout=2.0)
            return f"a protocol reply: {reply.get('type')}"
    except (ClientTimeout, ConnectionClosed, BadReply, OSError):
        return None


def _tls_hello(ep, sslctx, token) -> dict:
    with Connection(ep.host, ep.port, timeout=5.0, ssl_context=sslctx) as c:
        return c.request(make_request("hello", {"versions": [1], "role": "orchestrator"}, token=token), timeout=5.0)


def _tls_task(ctx, topo, sslctx):
    task_input = oracle.generate_input(ctx.rng, 8)
    tid = ctx.task_id()
    req = make_request("submit", {"task_type": "triage", "input": task_input}, token=ctx.token, task_id=tid)
    with topo.connect(direct=True, ssl_context=sslctx) as c:
        reply = c.request(req, timeout=10.0)
    p = expect_ok(reply, "submit", sent=req, token=ctx.token,
                  what="a task over TLS (the orchestrator must reach the agents over verified TLS)",
                  hint="With FD_TLS_CA set, connect to agents with TLS and verify against that CA.")
    if first_difference(oracle.expected_result("triage", task_input), p.get("result")):
        raise CheckFailed("the TLS task's result differs from the oracle", received=redact(reply, ctx.token))


@check(id="tls.server_tls", title="TLS-only protocol ports; the pipeline runs over verified TLS",
       items=["tls.encryption"], weight=2, stage=10, challenge="tls-shutdown", timeout=40.0)
def server_tls(ctx):
    """A fresh deployment with FD_TLS_CERT/KEY/CA: a plaintext hello gets no protocol reply
    (orchestrator and an agent); a TLS client verifying the CA gets hello_ok; a task runs
    end to end over TLS with the oracle's result; /livez stays plain HTTP."""
    with tempfile.TemporaryDirectory(prefix="faultdrill-pki-") as d:
        topo, pki = _tls_topology(ctx, Path(d), client_auth=False)
        ctx.note("action", "TLS deployment started")
        try:
            sslctx = _client_ctx(pki, with_cert=False)
            for role in ("orchestrator", "collector"):
                ep = topo.deployment.endpoint(role)
                got = _plaintext_refused(ep, ctx.token)
                if got:
                    raise CheckFailed(f"{role}: a plaintext client must get no protocol reply with TLS on",
                                      expected="handshake failure / close", received=got)
                reply = _tls_hello(ep, sslctx, ctx.token)
                expect_ok(reply, "hello", token=ctx.token, what=f"{role}: hello over TLS")
            _tls_task(ctx, topo, sslctx)
        finally:
            topo.close()


@check(id="tls.mutual", title="mutual TLS rejects clients without a certificate or with another CA's",
       items=["tls.mutual"], weight=1, stage=10, challenge="tls-shutdown", visibility="hidden", timeout=40.0)
def mutual(ctx):
    """With FD_TLS_CLIENT_AUTH=1: a TLS client without a certificate, or with a
    certificate signed by another CA (same issuer name, other key), gets no protocol
    reply; with a CA-signed certificate it gets hello_ok; a task runs end to end (the
    orchestrator presents its certificate to the agents)."""
    with tempfile.TemporaryDirectory(prefix="faultdrill-pki-") as d:
        topo, pki = _tls_topology(ctx, Path(d), client_auth=True)
        ctx.note("action", "mutual-TLS deployment started")
        try:
            for role in ("orchestrator", "analyzer"):
                ep = topo.deployment.endpoint(role)
                try:
                    reply = _tls_hello(ep, _client_ctx(pki, with_cert=False), ctx.token)
                    raise CheckFailed(f"{role}: a client without a certificate must be rejected",
                                      expected="handshake failure / close", received=redact(reply, ctx.token))
                except (ssl.SSLError, ConnectionClosed, ClientTimeout, BadReply, OSError):
                    pass
                try:
                    reply = _tls_hello(ep, _client_ctx(pki, with_cert=True, cert="rogue-client"), ctx.token)
                    raise CheckFailed(f"{role}: a client certificate signed by another CA must be rejected",
                                      expected="handshake failure / close (verify the client certificate "
                                               "against FD_TLS_CA)", received=redact(reply, ctx.token),
                                      hint="Require AND verify the client certificate (Go: "
                                           "RequireAndVerifyClientCert, not RequireAnyClientCert).")
                except (ssl.SSLError, ConnectionClosed, ClientTimeout, BadReply, OSError):
                    pass
                reply = _tls_hello(ep, _client_ctx(pki, with_cert=True), ctx.token)
                expect_ok(reply, "hello", token=ctx.token, what=f"{role}: hello with a client certificate")
            _tls_task(ctx, topo, _client_ctx(pki, with_cert=True))
        finally:
            topo.close()


def _agent_refused(ctx, topo, pki, cert: str, what: str) -> None:
    """Restart the collector presenting `cert`; a task must then fail at collect."""
    dep = topo.deployment
    env = {var: dep.place_file("collector", f"tls/{fname}", pki[fname].read_bytes(), mode=mode)
           for var, (fname, mode) in {"FD_TLS_CERT": (f"{cert}.pem", 0o444), "FD_TLS_KEY": (f"{cert}.key", 0o400),
                                      "FD_TLS_CA": ("ca.pem", 0o444)}.items()}
    env["FD_TLS_CLIENT_AUTH"] = "0"
    dep.stop("collector")
    dep.start("collector", env)
    ctx.note("fault", f"collector restarted presenting {what}")
    task_input = oracle.generate_input(ctx.rng, 5)
    tid = ctx.task_id()
    req = make_request("submit", {"task_type": "triage", "input": task_input}, token=ctx.token, task_id=tid)
    with topo.connect(direct=True, ssl_context=_client_ctx(pki, with_cert=False)) as c:
        reply = c.request(req, timeout=10.0)
    name = reply.get("type") == "error" and (reply.get("error") or {}).get("name")
    step = ((reply.get("error") or {}).get("details") or {}).get("step") if isinstance(reply.get("error"), dict) else None
    ctx.note("reaction", f"the task got {reply.get('type')} {name or ''} (step {step})")
    if name not in ("upstream_failed", "timeout") or step != "collect":
        raise CheckFailed(f"the orchestrator sent work to a collector presenting {what}",
                          sent=redact(req, ctx.token),
                          expected="upstream_failed (or timeout) at step collect: the TLS handshake must fail",
                          received=redact(reply, ctx.token),
                          hint="Verify agent certificates against FD_TLS_CA and check the hostname against "
                               "the host of the agent address (SPEC §16).")


@check(id="tls.agent_identity", title="the orchestrator refuses agents with another CA's or another host's certificate",
       items=["tls.encryption"], weight=2, stage=10, challenge="tls-shutdown", visibility="hidden", timeout=40.0)
def agent_identity(ctx):
    """A TLS deployment runs a task end to end; then the collector is restarted presenting
    (1) a certificate for the right names signed by another CA with the same issuer name,
    (2) a certificate signed by the right CA for another host (wrong-host.invalid,
    192.0.2.1): each time a task must fail with upstream_failed (or timeout) at step
    collect, because the orchestrator's handshake with the collector must fail."""
    with tempfile.TemporaryDirectory(prefix="faultdrill-pki-") as d:
        topo, pki = _tls_topology(ctx, Path(d), client_auth=False)
        ctx.note("action", "TLS deployment started")
        try:
            _tls_task(ctx, topo, _client_ctx(pki, with_cert=False))
            _agent_refused(ctx, topo, pki, "rogue-service", "a certificate signed by another CA")
            _agent_refused(ctx, topo, pki, "wronghost", "a valid certificate for another host")
        finally:
            topo.close()
