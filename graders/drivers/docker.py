"""The Docker driver: run a submission's four services as containers.

Why a second driver: a candidate may ship in any language, and the interviewer may want to
grade the image they would deploy. Checks do not change: everything they do to a service
goes through the same `Deployment` interface as the process driver.

How it maps the interface (docs/DOCKER.md has the long form):

- One image per submission, built from the manifest's `[docker]` section (`dockerfile`,
  `context`, optional `[docker.command]`), tagged by a digest of the build context so a
  second deployment of unchanged code reuses it (plus a per-driver suffix unless
  `keep_images`: concurrent graders never share, hence never remove, each other's
  image). `BASE_IMAGE` is passed as a build arg: the local image for the manifest's
  `[docker] base` language when it exists (there is no registry here; base_images.py).
  A build that fails because its base cannot be fetched is a grader error
  (`BuildEnvironmentError`: the grade is INCOMPLETE), with the fix in its message.
- Per deployment: one named volume per service (mounted at `/var/lib/faultdrill/memory`,
  which is `FD_MEMORY_DIR`), one container per service whose network alias is its role,
  and a network that isolates them as the process driver's namespace does
  (`docker_network`): an internal bridge on a subnet of the driver's choosing, from which
  the host's address is removed and to which only the grader's own network namespace is
  joined (a veth pair). Containers have static addresses; every service binds 0.0.0.0 on
  its SPEC default ports, and `endpoint(role)` is `<container address>:<SPEC port>`,
  the same across restarts. Nothing is published on the host.
- Fault proxies live in the grader's namespace and listen on the grader's address on
  that network (`proxy_host`); the orchestrator's `FD_*_ADDR` point at
  `proxy_host:<proxy port>`. Without proxies the driver points the orchestrator at the
  agents directly (`collector:7001`, ...).
- Where that isolation cannot be set up, `faultdrill grade --driver docker` refuses
  (graders/sandbox/entry.py) unless `--unsafe-no-sandbox` is given; then (and for an
  in-process caller outside a grader namespace) the driver falls back to a plain bridge
  network with ports published on 127.0.0.1 and proxies at the gateway, and says so in
  `sandbox_description()`.
- Memory is read and damaged through the engine's archive API (get/put_archive), which
  works on stopped containers and on a read-only root filesystem (the volume is
  writable), with the ownership of the memory directory so the service can still
  read what the grader wrote.
- Everything created carries the label `faultdrill=1` and `faultdrill.run=<run id>`;
  `close()` removes it, and so do an atexit hook and a SIGTERM handler; `faultdrill clean`
  removes whatever a crashed grader left.

The engine is addressed through `DOCKER_HOST` or, when unset, the local socket
`unix:///var/run/docker.sock`, never through a docker CLI context.
"""
from __future__ import annotations

import atexit
import hashlib
import http.client
import io
import json
import math
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tarfile
import threading
import time
from pathlib import Path, PurePosixPath

from ..manifest import ROLES, Submission
from . import docker_network as dnet
from ..paths import REPO_ROOT
from .process import allocate_ports, release_ports
from .base_images import (BASE_IMAGES, BuildEnvironmentError, base_image_name, environment_error,
                          failed_fetch)
from .base import (PASSTHROUGH_ENV, SPEC_ENV_VARS, CleanupReport, Deployment, Driver, Endpoint,
                   StartError)

__all__ = [
    "DEFAULT_DOCKER_HOST", "LABEL", "RUN_LABEL", "ROLE_LABEL", "LOCAL_BASE_IMAGE",
    "CONTAINER_MEMORY_DIR", "CONTAINER_FILES_DIR", "CONTAINER_PORTS", "DockerUnavailable", "docker_host", "connect",
    "engine_status", "ensure_engine", "ensure_base_image", "remove_labelled",
    "container_command", "build_paths",
    "context_digest", "translate_agent_addr", "single_file_tar", "tar_listing",
    "DockerDriver", "DockerDeployment",
]

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
LABEL = "faultdrill"                   # value "1" on everything the kit creates
RUN_LABEL = "faultdrill.run"
ROLE_LABEL = "faultdrill.role"
LOCAL_BASE_IMAGE = "faultdrill/python-base:bookworm"
CONTAINER_MEMORY_DIR = "/var/lib/faultdrill/memory"
#: Where files the grader places for a service (TLS certificates) appear in its container:
#: one volume per deployment, `<role>/<name>` inside it (see `place_file`).
CONTAINER_FILES_DIR = "/run/faultdrill/files"
#: The user a container runs as when its image would run it as root: never root
#: (docs/THREAT_MODEL.md); its memory volume is handed to it before the first start.
FALLBACK_USER = "65534:65534"
#: CPUs each service container may use (the process driver bounds CPU time instead).
SERVICE_NANO_CPUS = 1_000_000_000
#: Ports each service listens on inside its container (SPEC §2 defaults).
CONTAINER_PORTS = {"orchestrator": 7000, "collector": 7001, "analyzer": 7002, "reporter": 7003}
AGENT_ADDR_VARS = {"collector": "FD_COLLECTOR_ADDR", "analyzer": "FD_ANALYZER_ADDR",
                   "reporter": "FD_REPORTER_ADDR"}
#: Variables the driver owns: they describe where the container listens and stores.
DRIVER_OWNED = ("FD_ROLE", "FD_LISTEN_HOST", "FD_LISTEN_PORT", "FD_HTTP_PORT", "FD_MEMORY_DIR")

API_TIMEOUT = 60          # seconds for one ordinary engine call
BUILD_TIMEOUT = 900       # seconds for an image build


class DockerUnavailable(RuntimeError):
    """No Docker engine answers (SDK missing, socket absent, daemon down)."""


# --------------------------------------------------------------------------- engine

def docker_host() -> str:
    """The engine address: `DOCKER_HOST` if set, else the local socket. Never a CLI
    context: docker SDK 7 follows the CLI's current context, which may point anywhere."""
    return os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST


def connect(timeout: float = API_TIMEOUT):
    """A `docker.DockerClient` for `docker_host()` that has answered a ping."""
    try:
        import docker  # the SDK; optional for the kit, needed for this driver
    except ImportError as exc:
        raise DockerUnavailable("the `docker` Python SDK is not installed "
                                "(pip install docker)") from exc
    try:
        client = docker.DockerClient(base_url=docker_host(), timeout=int(timeout))
        client.ping()
    except Exception as exc:
        raise DockerUnavailable(f"no Docker engine answers at {docker_host()}: {exc}") from exc
    return client


def engine_status() -> tuple[bool, str]:
    """(available, reason) without raising; used by tests and `faultdrill clean`."""
    try:
        client = connect(timeout=10)
    except DockerUnavailable as exc:
        return False, str(exc)
    try:
        version = client.version().get("Version", "?")
    finally:
        client.close()
    return True, f"Docker engine {version} at {docker_host()}"


def ensure_engine(*, start: bool = True, timeout: float = 90.0) -> tuple[bool, str]:
    """(available, reason). If no engine answers but `dockerd` is installed and we are
    root, start it with docker/install-engine.sh --start-only (never installs packages).
    Tests use this to tell "no engine can run here" (skip) from a broken one (fail)."""
    ok, reason = engine_status()
    if ok or not start:
        return ok, reason
    if shutil.which("dockerd") is None:
        return False, f"{reason}; and no dockerd binary is installed (docker/install-engine.sh)"
    if os.geteuid() != 0:
        return False, f"{reason}; dockerd is installed but only root can start it"
    script = REPO_ROOT / "docker" / "install-engine.sh"
    try:
        proc = subprocess.run([str(script), "--start-only"], capture_output=True, text=True,
                              timeout=timeout, env=dict(os.environ, DOCKER_HOST=docker_host()))
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"{reason}; starting dockerd failed: {exc}"
    ok, reason2 = engine_status()
    if not ok:
        return False, f"{reason2}; install-engine.sh --start-only said: {proc.stderr[-500:]}"
    return True, reason2


def ensure_base_image(client, *, language: str = "python", build: bool = True,
                      timeout: float = 900.0) -> str | None:
    """The BASE_IMAGE to build `language` images with: its variable (`FD_BASE_IMAGE`,
    `FD_NODE_BASE_IMAGE`) if set; else the local Debian base if it exists; else the
    usual registry image if it happens to be present; else (there is no registry) build
    the local base with its script (docker/build-base-image.sh, build-node-image.sh).
    None if impossible."""
    from docker.errors import ImageNotFound
    spec = BASE_IMAGES[language]
    if os.environ.get(spec.env):
        return os.environ[spec.env]
    for name in (spec.local, spec.registry_default):
        try:
            client.images.get(name)
            return name
        except ImageNotFound:
            pass
    if not build:
        return None
    script = REPO_ROOT / spec.script
    proc = subprocess.run([str(script)], capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, DOCKER_HOST=docker_host()))
    if proc.returncode != 0:
        raise RuntimeError(f"{spec.script} failed ({proc.returncode}): "
                           f"{proc.stderr[-1500:]}")
    return spec.local


def remove_labelled(client, *, run_id: str | None = None, images: bool = True) -> dict:
    """Remove every container, network, volume and (optionally) image labelled
    `faultdrill=1` (and `faultdrill.run=<run_id>` when given). Returns what was removed
    and what could not be, per kind. Order matters: containers hold networks/volumes."""
    filters = {"label": [f"{LABEL}=1"] + ([f"{RUN_LABEL}={run_id}"] if run_id else [])}
    done: dict[str, list[str]] = {"containers": [], "networks": [], "volumes": [],
                                  "images": [], "links": [], "errors": []}
    for c in client.containers.list(all=True, filters=filters):
        try:
            c.remove(force=True, v=True)
            done["containers"].append(c.name)
        except Exception as exc:
            if "No such container" not in str(exc):
                done["errors"].append(f"container {c.name}: {exc}")
    for n in client.networks.list(filters=filters):
        try:
            n.remove()
            done["networks"].append(n.name)
        except Exception as exc:
            done["errors"].append(f"network {n.name}: {exc}")
    # Host ends of isolated networks' veth pairs whose grader namespace outlived its
    # grader (docker_network); in this namespace only, so a grader's own sweep finds none.
    links, link_errors = dnet.remove_leftover_links(run_id)
    done["links"].extend(links)
    done["errors"].extend(link_errors)
    for v in client.volumes.list(filters=filters):
        try:
            v.remove(force=True)
            done["volumes"].append(v.name)
        except Exception as exc:
            done["errors"].append(f"volume {v.name}: {exc}")
    if images:
        for img in client.images.list(filters=filters):
            name = (img.tags or [img.short_id])[0]
            try:
                client.images.remove(img.id, force=True, noprune=False)
                done["images"].append(name)
            except Exception as exc:
                if "No such image" not in str(exc):
                    done["errors"].append(f"image {name}: {exc}")
    return done


# --------------------------------------------------------------------------- pure helpers

def forced_user(image_user: str | None) -> str | None:
    """None when the image names a non-root user (it runs as that user); FALLBACK_USER
    when it would run as root (no USER, or USER root / 0)."""
    name = (image_user or "").strip().split(":", 1)[0]
    return FALLBACK_USER if name in ("", "0", "root") else None


def container_command(submission: Submission, role: str) -> list[str]:
    """The argv a role runs inside the image: `[docker.command].<role>` if the manifest
    gives one, else the service command with `{python}` -> `python3` and `{root}` -> `.`
    (the image's working directory is the submission root's stand-in)."""
    override = (submission.docker.get("command") or {}).get(role)
    if override is not None:
        if (not isinstance(override, list) or not override
                or not all(isinstance(a, str) and a for a in override)):
            raise ValueError(f"docker.command.{role} must be a non-empty list of strings")
        return list(override)
    raw = submission.raw_commands.get(role) or submission.commands[role]
    return [a.replace("{python}", "python3").replace("{root}", ".") for a in raw]


def build_paths(submission: Submission) -> tuple[Path, Path]:
    """(context dir, Dockerfile path) from `[docker]`, both relative to the submission
    root (SPEC §3); they must stay inside it."""
    spec = submission.docker or {}
    root = submission.root.resolve()
    context = (root / str(spec.get("context", "."))).resolve()
    dockerfile = (root / str(spec.get("dockerfile", "Dockerfile"))).resolve()
    for what, p in (("context", context), ("dockerfile", dockerfile)):
        if p != root and root not in p.parents:
            raise ValueError(f"docker.{what} {p} is outside the submission root {root}")
    if not context.is_dir():
        raise ValueError(f"docker.context {context} is not a directory")
    if not dockerfile.is_file():
        raise ValueError(f"docker.dockerfile {dockerfile} does not exist")
    return context, dockerfile


def context_digest(context: Path, dockerfile: Path, build_args: dict) -> str:
    """A digest of what a build would see (files kept by .dockerignore, their modes and
    bytes, the Dockerfile, the build args): equal digests mean the image can be reused."""
    from docker.utils.build import exclude_paths
    ignore = context / ".dockerignore"
    patterns: list[str] = []
    if ignore.is_file():
        patterns = [ln.strip() for ln in ignore.read_text(encoding="utf-8").splitlines()
                    if ln.strip() and not ln.startswith("#")]
    h = hashlib.sha256()
    h.update(json.dumps(sorted(build_args.items())).encode())
    h.update(dockerfile.read_bytes())
    for rel in sorted(exclude_paths(str(context), patterns)):
        p = context / rel
        if p.is_file() and not p.is_symlink():
            h.update(rel.encode() + b"\0" + oct(p.stat().st_mode & 0o777).encode() + b"\0")
            h.update(hashlib.sha256(p.read_bytes()).digest())
        elif p.is_symlink():
            h.update(rel.encode() + b"\0->" + os.readlink(p).encode())
    return h.hexdigest()


def single_file_tar(relpath: str, data: bytes, *, mode: int, uid: int, gid: int,
                    new_dirs: tuple[str, ...] = ()) -> bytes:
    """A tar archive holding the directories `new_dirs` (created with mode 0755) and one
    regular file at `relpath`, all owned by uid:gid: what put_archive extracts."""
    buf = io.BytesIO()
    now = time.time()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in new_dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.uid, info.gid, info.mtime = (
                tarfile.DIRTYPE, 0o755, uid, gid, now)
            tar.addfile(info)
        info = tarfile.TarInfo(relpath)
        info.size, info.mode, info.uid, info.gid, info.mtime = len(data), mode, uid, gid, now
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def tar_listing(blob: bytes) -> tuple[list[tarfile.TarInfo], dict[str, bytes]]:
    """(members, {name: bytes of each regular file}) of an archive from get_archive."""
    members, files = [], {}
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:") as tar:
        for m in tar.getmembers():
            members.append(m)
            if m.isfile():
                f = tar.extractfile(m)
                files[m.name] = f.read() if f else b""
    return members, files


_LOCAL_HOSTS = ("127.0.0.1", "localhost", "0.0.0.0")


def translate_agent_addr(addr: str | None, agent: str, endpoints: dict[str, Endpoint],
                         proxy_host: str) -> str:
    """Translate an agent address as the grader sees it into one the orchestrator's
    container can reach. Unset, or an agent's own endpoint (its container address and
    port; with published ports, 127.0.0.1:<published port>) -> that agent on the private
    network (`collector:7001`). Any other loopback or wildcard address (a fault proxy of
    the grader) -> the same port on `proxy_host`, where such proxies must also listen.
    Anything else is kept as it is."""
    if not addr:
        return f"{agent}:{CONTAINER_PORTS[agent]}"
    host, sep, port = addr.rpartition(":")
    if not sep:
        return addr
    for role, ep in endpoints.items():
        if str(ep.port) == port and (ep.host == host or (host in _LOCAL_HOSTS and ep.host in _LOCAL_HOSTS)):
            return f"{role}:{CONTAINER_PORTS[role]}"
    if host not in _LOCAL_HOSTS:
        return addr
    return f"{proxy_host}:{port}"


def _safe_relpath(relpath: str) -> str:
    """A memory-relative path that cannot escape the memory directory."""
    p = PurePosixPath(relpath)
    if p.is_absolute() or not p.parts or any(part in ("..", "") for part in p.parts):
        raise ValueError(f"memory path {relpath!r} must be relative, without '..'")
    return p.as_posix()


def _slug(name: str) -> str:
    s = re.sub(r"[^a-z0-9_.-]+", "-", name.lower()).strip("-._")
    return (s or "submission")[:48]


def _http_ok(host: str, port: int, path: str, timeout: float) -> bool:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


# --------------------------------------------------------------------------- cleanup hooks

# Strong references on purpose: a deployment or a driver that built an image must be
# cleaned up at exit even if its owner dropped it (a weak set loses whatever the garbage
# collector took first, and with it the containers or the image). close() unregisters.
_LIVE: "set[DockerDeployment]" = set()
_DRIVERS: "set[DockerDriver]" = set()
_hooks_lock = threading.Lock()
_hooks_installed = False


def _close_everything() -> None:
    for dep in list(_LIVE):
        try:
            dep.close()
        except Exception:
            pass
    for drv in list(_DRIVERS):
        try:
            drv.close()
        except Exception:
            pass


def _install_hooks() -> None:
    """atexit always; a SIGTERM handler only when nobody else installed one (and only from
    the main thread, where Python allows it): it turns SIGTERM into SystemExit so that
    finally-blocks and atexit run and no container outlives the grader."""
    global _hooks_installed
    with _hooks_lock:
        if _hooks_installed:
            return
        _hooks_installed = True
        atexit.register(_close_everything)
        if threading.current_thread() is threading.main_thread():
            try:
                if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
                    def _on_term(signum, frame):
                        _close_everything()
                        raise SystemExit(128 + signum)
                    signal.signal(signal.SIGTERM, _on_term)
            except (ValueError, OSError):
                pass


# --------------------------------------------------------------------------- driver

class DockerDriver(Driver):
    """Builds submission images and deploys them as containers (see module docstring).

    `base_image`: the `BASE_IMAGE` build arg for every submission; default: per the
    manifest's `[docker] base` language, its variable (`FD_BASE_IMAGE`,
    `FD_NODE_BASE_IMAGE`) or its local image (`faultdrill/python-base:bookworm`,
    `faultdrill/node-base:bookworm`) if that exists, else none (the Dockerfile's own
    default). `keep_images`: leave built images for the next run
    (`faultdrill clean` removes them). `isolate_network`: True requires the isolated
    network (`docker_network`; a deployment fails with NetworkIsolationError where it
    cannot be made), False is the plain bridge (`--unsafe-no-sandbox`), None isolates
    whenever the grader runs in a namespace of its own (`faultdrill grade`, or
    `docker_network.grader_namespace()`) and otherwise uses the plain bridge."""

    name = "docker"

    def __init__(self, *, base_image: str | None = None, keep_images: bool = False,
                 client=None, read_only: bool = True, isolate_network: bool | None = None):
        self._client = client
        self.isolate_network = isolate_network
        self._own_client = client is None
        self.base_image = base_image
        self.keep_images = keep_images
        self.read_only = read_only
        self.built: list[str] = []         # image ids this driver built
        self._built_tags: dict[str, str] = {}   # image id -> the tag this driver gave it
        # Without keep_images the tag is private to this driver: two graders of the same
        # code (parallel CI jobs, a test next to a grade) must not share an image that
        # either may remove while the other still creates containers from it. They
        # still share the engine's layer cache, so a second build is quick.
        self._tag_suffix = "" if keep_images else f"-{secrets.token_hex(3)}"
        self._lock = threading.Lock()
        # image tag -> the BuildEnvironmentError its build met: every later deployment of
        # the same code fails at once instead of retrying a fetch that cannot work.
        self._env_failures: dict[str, BuildEnvironmentError] = {}
        _install_hooks()

    @property
    def client(self):
        if self._client is None:
            self._client = connect()
        return self._client

    def engine_namespace(self) -> int | None:
        """The engine's namespace descriptor when deployments are to be isolated, else
        None (plain bridge); raises NetworkIsolationError when isolation is required
        but the grader has no namespace of its own."""
        if self.isolate_network is False:
            return None
        fd = dnet.engine_namespace()
        if fd is None and self.isolate_network:
            raise dnet.NetworkIsolationError(
                "the Docker network can only be isolated when the grader runs in a network "
                "namespace of its own (run `faultdrill grade`, or use "
                "docker_network.grader_namespace() in-process)")
        return fd

    def sandbox_description(self) -> dict:
        """What reports show about isolation (the grade metadata's `sandbox`): the
        UNSANDBOXED banner when the network was deliberately left open."""
        common = {"tool": "docker", "user": "the image's non-root USER, else 65534:65534",
                  "capabilities": "none (cap_drop ALL)", "no_new_privs": True,
                  "filesystem": "the image, read-only; one volume per service; nothing of the host",
                  "limits": {"pids": 512, "memory_bytes": 1024 ** 3, "cpus": SERVICE_NANO_CPUS / 1e9}}
        if self.isolate_network is False:
            return {"mode": "docker", "enabled": False, **common,
                    "network": "NOT isolated: a plain bridge network with the engine's NAT",
                    "reason": "--unsafe-no-sandbox: the Docker network was not isolated, so the "
                              "containers could reach this machine's listening ports, other grades "
                              "and outside networks"}
        if dnet.engine_namespace() is None:
            return {"mode": "docker", **common,
                    "network": "not isolated: this run did not enter a namespace of its own (it "
                               "was started in-process, not as `faultdrill grade`): a plain bridge "
                               "network with the engine's NAT"}
        return {"mode": "docker", **common,
                "network": "isolated: an internal bridge per deployment with no host address, "
                           "joined only to the grade's own network namespace"}

    def _base_image(self, language: str = "python") -> str | None:
        """The BASE_IMAGE to pass for `language`, or None when it does not exist here
        (the Dockerfile's own default is then tried)."""
        if self.base_image:
            return self.base_image
        from docker.errors import ImageNotFound
        name = base_image_name(language)
        try:
            self.client.images.get(name)
            return name
        except ImageNotFound:
            return None

    def image_for(self, submission: Submission, run_id: str) -> str:
        """Build (or reuse) the submission's image; returns its tag."""
        from docker.errors import BuildError, ImageNotFound
        try:
            context, dockerfile = build_paths(submission)
        except ValueError as exc:
            raise StartError("build", f"cannot build the image: {exc}") from None
        language = submission.docker.get("base", "python")
        base = self._base_image(language)
        args = {"BASE_IMAGE": base} if base else {}
        digest = context_digest(context, dockerfile, args)[:16]
        tag = f"faultdrill/{_slug(submission.name)}:{digest}{self._tag_suffix}"
        with self._lock:
            if tag in self._env_failures:
                raise self._env_failures[tag]
            try:
                self.client.images.get(tag)
                return tag
            except ImageNotFound:
                pass
            try:
                image, _ = self.client.images.build(
                    path=str(context), dockerfile=str(dockerfile), tag=tag, buildargs=args,
                    labels={LABEL: "1", RUN_LABEL: run_id, "faultdrill.submission":
                            submission.name[:200]},
                    rm=True, forcerm=True, pull=False, timeout=BUILD_TIMEOUT)
            except BuildError as exc:
                dockerfile_text = dockerfile.read_text(encoding="utf-8", errors="replace")
                fetch = failed_fetch(list(exc.build_log), str(exc.msg), build_args=args,
                                     dockerfile_text=dockerfile_text)
                if fetch is not None:
                    env_error = environment_error(
                        fetch, language=language, passed_base=base, local_exists=base is not None,
                        dockerfile_text=dockerfile_text)
                    self._env_failures[tag] = env_error
                    raise env_error from None
                tail = [str(chunk.get("stream") or chunk.get("error") or "").rstrip()
                        for chunk in exc.build_log if isinstance(chunk, dict)]
                raise StartError("build", f"docker build failed: {exc.msg}",
                                 [t for t in tail if t][-30:]) from None
            self.built.append(image.id)
            self._built_tags[image.id] = tag
            _DRIVERS.add(self)           # so that atexit removes the image at the latest
            return tag

    def deploy(self, submission: Submission, *,
               base_env: dict[str, dict[str, str]]) -> "DockerDeployment":
        run_id = secrets.token_hex(4)
        image = self.image_for(submission, run_id)
        dep = DockerDeployment(self, submission, image, run_id, base_env)
        try:
            dep._create_resources()
        except BaseException:
            dep.close()
            raise
        return dep

    def close(self) -> CleanupReport:
        """Remove the images this driver built (unless keep_images)."""
        report = CleanupReport()
        if self._client is None:
            return report
        if not self.keep_images:
            for image_id in list(self.built):
                # By tag and without force: removes the image when the tag is its last
                # name, and never takes an image from under someone else's containers.
                name = self._built_tags.pop(image_id, image_id)
                try:
                    self._client.images.remove(name, noprune=False)
                except Exception as exc:
                    if "No such image" not in str(exc):
                        report.errors.append(f"image {name}: {exc}")
                self.built.remove(image_id)
        if not self.built:
            _DRIVERS.discard(self)
        if self._own_client and not _LIVE:
            try:
                self._client.close()
            except Exception:
                pass
            self._client = None
        return report


class DockerDeployment(Deployment):
    """One submission's four containers on a private network (see module docstring)."""
    driver_owned_env = DRIVER_OWNED

    def __init__(self, driver: DockerDriver, submission: Submission, image: str,
                 run_id: str, base_env: dict[str, dict[str, str]]):
        self.driver = driver
        self.client = driver.client
        self.submission = submission
        self.image = image
        # Containers are created from the image id, not the tag: a concurrent grader of the
        # same code shares the tag and may untag it when it finishes.
        image_obj = driver.client.images.get(image)
        self.image_id = image_obj.id
        self.user = forced_user((image_obj.attrs.get("Config") or {}).get("User"))
        self.run_id = run_id
        self.prefix = f"faultdrill-{run_id}"
        self.network_name = f"{self.prefix}-net"
        self.base_env = {role: dict(base_env.get(role, {})) for role in ROLES}
        for role, env in self.base_env.items():
            self._check_env_keys(env, f"base_env[{role!r}]")
        self.labels = {LABEL: "1", RUN_LABEL: run_id}
        self.proxy_host = "127.0.0.1"       # replaced by the grader's (or gateway) address
        #: The isolated network's plan (None: a plain bridge with published ports).
        self.address_plan: dnet.AddressPlan | None = None
        self.link_names = dnet.names_for(run_id)
        self._namespaces: dnet.Namespaces | None = None
        self._plumbed = False
        self._endpoints: dict[str, Endpoint] = {}
        self._containers: dict[str, object] = {}
        self._env: dict[str, dict[str, str]] = {}
        self._last_env: dict[str, dict[str, str | None] | None] = {r: None for r in ROLES}
        self._sent: dict[str, set[int]] = {r: set() for r in ROLES}   # signals we sent
        self._run_start: dict[str, dict[str, int]] = {
            r: {"stdout": 0, "stderr": 0} for r in ROLES}
        self._old_logs: dict[str, dict[str, list[str]]] = {
            r: {"stdout": [], "stderr": []} for r in ROLES}
        self._volumes: dict[str, str] = {r: f"{self.prefix}-{r}-memory" for r in ROLES}
        self._files_volume = f"{self.prefix}-files"
        self._created_volumes: list[str] = []
        self._network = None
        self._closed = False
        self._lock = threading.RLock()
        _LIVE.add(self)

    # -- setup ---------------------------------------------------------------------------
    def _create_resources(self) -> None:
        engine_fd = self.driver.engine_namespace()
        if engine_fd is not None:
            self._create_isolated_network(engine_fd)
        else:
            self._create_bridge_network()
        for role in ROLES:
            self.client.volumes.create(self._volumes[role],
                                       labels=dict(self.labels, **{ROLE_LABEL: role}))
            self._created_volumes.append(self._volumes[role])
        self.client.volumes.create(self._files_volume, labels=dict(self.labels))
        self._created_volumes.append(self._files_volume)
        if self.user is not None:
            self._hand_volumes_to(self.user)
        if self.address_plan is not None:
            for role in ROLES:
                port = CONTAINER_PORTS[role]
                self._endpoints[role] = Endpoint(role=role, host=self.address_plan.containers[role],
                                                 port=port, http_port=port + 100)
        else:
            ports = allocate_ports(2 * len(ROLES))
            self._claimed_ports = ports
            for i, role in enumerate(ROLES):
                self._endpoints[role] = Endpoint(role=role, host="127.0.0.1", port=ports[2 * i],
                                                 http_port=ports[2 * i + 1])
        # Containers exist (created, not started) from the start, so memory can be
        # seeded or damaged before a service's first start.
        for role in ROLES:
            self._create_container(role, self._env_for(role, None))

    def _create_bridge_network(self) -> None:
        """The plain bridge (not isolated): the engine's NAT, the host at the gateway."""
        self._network = self.client.networks.create(
            self.network_name, driver="bridge", labels=self.labels, check_duplicate=True)
        self._network.reload()
        try:
            self.proxy_host = self._network.attrs["IPAM"]["Config"][0]["Gateway"]
        except (KeyError, IndexError, TypeError):
            raise StartError("network", f"network {self.network_name} has no gateway "
                             "address; fault proxies could not be reached") from None

    def _create_isolated_network(self, engine_fd: int) -> None:
        """An internal network on a free subnet, the grader's namespace joined to its
        bridge, the host's addresses removed from it (docker_network), all before any
        container exists. A subnet Docker refuses as overlapping (a concurrent grader
        took it meanwhile) is retried with another."""
        from docker.errors import APIError
        from docker.types import IPAMConfig, IPAMPool
        self._namespaces = dnet.Namespaces(engine_fd)
        taken = dnet.host_networks(self._namespaces)
        for net in self.client.networks.list():
            for cfg in (net.attrs.get("IPAM") or {}).get("Config") or []:
                if cfg.get("Subnet"):
                    taken.append(cfg["Subnet"])
        rng = random.SystemRandom()
        last_error = None
        for _ in range(8):
            plan = dnet.plan_addresses(dnet.choose_subnet(rng, taken))
            ipam = IPAMConfig(pool_configs=[IPAMPool(
                subnet=str(plan.subnet), gateway=plan.gateway,
                aux_addresses={"grader": plan.grader})])
            try:
                self._network = self.client.networks.create(
                    self.network_name, driver="bridge", internal=True, ipam=ipam,
                    options={"com.docker.network.bridge.name": self.link_names.bridge,
                             "com.docker.network.bridge.enable_ip_masquerade": "false"},
                    labels=self.labels, check_duplicate=True)
                break
            except APIError as exc:
                if "overlap" not in str(exc).lower():
                    raise
                last_error = exc
                taken.append(plan.subnet)
        else:
            raise dnet.NetworkIsolationError(f"no subnet Docker accepts: {last_error}")
        steps = dnet.plumbing_steps(self.link_names, plan,
                                    engine_ns_path=f"/proc/self/fd/{self._namespaces.engine}")
        self._plumbed = True        # from here on, close() deletes the veth pair
        dnet.run_steps(steps, self._namespaces)
        self.address_plan = plan
        self.proxy_host = plan.grader

    def _hand_volumes_to(self, user: str) -> None:
        """An image without a non-root USER runs as `user`; Docker initialises its memory
        volumes root-owned, so one short-lived container per volume (the image's own
        `chown`, as root with CAP_CHOWN only, no network, nothing else mounted) hands
        each to that user first."""
        for role in ROLES:
            try:
                self.client.containers.run(
                    self.image_id, entrypoint=["chown", user, CONTAINER_MEMORY_DIR], command=[],
                    user="0:0", network_mode="none", read_only=True, cap_drop=["ALL"],
                    cap_add=["CHOWN"], security_opt=["no-new-privileges:true"],
                    volumes={self._volumes[role]: {"bind": CONTAINER_MEMORY_DIR, "mode": "rw"}},
                    labels=dict(self.labels), remove=True, stdout=True, stderr=True)
            except Exception as exc:  # noqa: BLE001 - any engine failure: one sentence
                raise StartError(role, "the image runs as root, so the grader runs it as "
                                 f"{user}, but could not hand it the memory volume ({exc}); "
                                 "give the Dockerfile a non-root USER that owns "
                                 f"{CONTAINER_MEMORY_DIR}") from None

    @staticmethod
    def _check_env_keys(env: dict, where: str) -> None:
        bad = sorted(k for k in env if k not in SPEC_ENV_VARS and k not in PASSTHROUGH_ENV)
        if bad:
            raise ValueError(f"{where}: {bad} are not SPEC §2 variables; a grader sets "
                             "nothing else")

    def _env_for(self, role: str, env: dict[str, str | None] | None) -> dict[str, str]:
        """The container environment: base env, then `env` (None removes a variable),
        then what the driver owns (where the service listens and stores). PATH and HOME
        are the image's own."""
        full: dict[str, str | None] = dict(self.base_env[role])
        full.update(env or {})
        full = {k: v for k, v in full.items() if v is not None and k not in ("PATH", "HOME")}
        port = CONTAINER_PORTS[role]
        full.update({"FD_ROLE": role, "FD_LISTEN_HOST": "0.0.0.0",
                     "FD_LISTEN_PORT": str(port), "FD_HTTP_PORT": str(port + 100),
                     "FD_MEMORY_DIR": CONTAINER_MEMORY_DIR,
                     "TZ": "UTC", "PYTHONUNBUFFERED": "1"})
        full.setdefault("LANG", "C.UTF-8")
        if role == "orchestrator":
            for agent, var in AGENT_ADDR_VARS.items():
                full[var] = self.container_addr(full.get(var), agent)
        return {k: str(v) for k, v in full.items()}

    def container_addr(self, addr: str | None, agent: str) -> str:
        """`translate_agent_addr` for this deployment."""
        return translate_agent_addr(addr, agent, self._endpoints, self.proxy_host)

    def _create_container(self, role: str, env: dict[str, str]):
        ep = self._endpoints[role]
        port = CONTAINER_PORTS[role]
        name = f"{self.prefix}-{role}"
        if self.address_plan is not None:    # isolated: a static address, nothing published
            ports = {}
            endpoint = self.client.api.create_endpoint_config(
                aliases=[role], ipv4_address=self.address_plan.containers[role])
        else:
            ports = {f"{port}/tcp": ("127.0.0.1", ep.port),
                     f"{port + 100}/tcp": ("127.0.0.1", ep.http_port)}
            endpoint = self.client.api.create_endpoint_config(aliases=[role])
        container = self.client.containers.create(
            self.image_id, command=container_command(self.submission, role), name=name,
            hostname=role, environment=env,
            labels=dict(self.labels, **{ROLE_LABEL: role}),
            ports=ports,
            # The files volume is writable only because the archive API refuses to write
            # into a read-only mount; services merely read what the grader placed there.
            volumes={self._volumes[role]: {"bind": CONTAINER_MEMORY_DIR, "mode": "rw"},
                     self._files_volume: {"bind": CONTAINER_FILES_DIR, "mode": "rw"}},
            network=self.network_name,
            networking_config={self.network_name: endpoint},
            read_only=self.driver.read_only, tmpfs={"/tmp": "size=16m,mode=1777"},
            cap_drop=["ALL"], security_opt=["no-new-privileges:true"],
            pids_limit=512, mem_limit="1g", stop_signal="SIGTERM", init=True,
            nano_cpus=SERVICE_NANO_CPUS, **({"user": self.user} if self.user else {}),
            # The image's HEALTHCHECK would probe /readyz every few seconds, and the
            # orchestrator's readiness says `hello` to every agent: traffic through the
            # fault proxies that no check asked for. The driver polls /livez itself.
            healthcheck={"test": ["NONE"]}, detach=True)
        self._containers[role] = container
        self._env[role] = env
        return container

    def _container(self, role: str):
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")
        if self._closed:
            raise RuntimeError("deployment is closed")
        return self._containers[role]

    def _state(self, role: str) -> dict:
        c = self._container(role)
        c.reload()
        return c.attrs.get("State", {})

    # -- the Deployment interface ----------------------------------------------------------
    def endpoint(self, role: str) -> Endpoint:
        return self._endpoints[role]

    def container_name(self, role: str) -> str:
        return self._container(role).name

    def start(self, role: str, env: dict[str, str] | None = None, *, wait: bool = True,
              timeout: float = 10.0) -> None:
        extra = dict(env or {})
        self._check_env_keys(extra, "start env")
        with self._lock:
            want = self._env_for(role, extra)
            state = self._state(role)
            if state.get("Running"):
                raise RuntimeError(f"{role} is already running; stop it first")
            if want != self._env[role]:
                self._replace_container(role, want)
            for stream in ("stdout", "stderr"):
                self._run_start[role][stream] = len(self.logs(role, stream))
            self._last_env[role] = extra
            self._sent[role].clear()
            self._container(role).start()
        if wait:
            self._wait_started(role, timeout)

    def _replace_container(self, role: str, env: dict[str, str]) -> None:
        """Environment is fixed at container creation, so a start with a different
        environment replaces the container (the memory volume stays); its logs are kept."""
        old = self._containers[role]
        self._save_logs(role, old)
        old.remove(force=True)
        self._create_container(role, env)

    def _save_logs(self, role: str, container) -> None:
        for stream in ("stdout", "stderr"):
            try:
                self._old_logs[role][stream].extend(self._read_logs(container, stream))
            except Exception:
                pass

    def _wait_started(self, role: str, timeout: float) -> None:
        """SPEC §3: started = the TCP port accepts and GET /livez answers 200. Through a
        published port only an HTTP answer proves the service itself is listening
        (docker-proxy accepts TCP connections on behalf of a container that does not)."""
        ep = self._endpoints[role]
        deadline = time.monotonic() + timeout
        while True:
            state = self._state(role)
            if not state.get("Running") and state.get("Status") in ("exited", "dead"):
                code = self._exit_code_of(role, state)
                raise StartError(role, f"exited with status {code} before it was started "
                                 f"(TCP {ep.addr}, HTTP /livez on port {ep.http_port})",
                                 [f"stderr| {ln}" for ln in
                                  self.logs(role, "stderr", current_run=True)[-30:]]
                                 + [f"stdout| {ln}" for ln in
                                    self.logs(role, "stdout", current_run=True)[-10:]], code)
            if _http_ok(ep.host, ep.http_port, "/livez", 1.0):
                try:
                    with socket.create_connection((ep.host, ep.port), timeout=1.0):
                        return
                except OSError:
                    pass
            if time.monotonic() >= deadline:
                tail = self.logs(role, "stderr", current_run=True)[-32:]
                self.kill(role)
                raise StartError(role, f"not started within {timeout:g} s: GET /livez on "
                                 f"port {ep.http_port} did not answer 200 (TCP {ep.addr}); "
                                 "the container was killed", tail)
            time.sleep(0.1)

    def stop(self, role: str, *, grace: float = 5.0) -> int | None:
        """`docker stop`: SIGTERM, then SIGKILL after `grace` seconds."""
        with self._lock:
            state = self._state(role)
            if state.get("Status") == "created":
                return None
            if state.get("Running"):
                c = self._container(role)
                if state.get("Paused"):
                    c.unpause()
                self._sent[role].update((signal.SIGTERM, signal.SIGKILL))
                c.stop(timeout=max(1, math.ceil(grace)))
                self.wait(role, timeout=10.0)
            return self.exit_code(role)

    def signal_term(self, role: str) -> None:
        self._signal(role, signal.SIGTERM)

    def signal_int(self, role: str) -> None:
        # docker-init (`init: true`) forwards SIGINT to the service like SIGTERM.
        self._signal(role, signal.SIGINT)

    def _signal(self, role: str, sig: signal.Signals) -> None:
        with self._lock:
            state = self._state(role)
            if not state.get("Running"):
                return
            if state.get("Paused"):
                self._container(role).unpause()
            self._sent[role].add(sig)
            self.client.api.kill(self._container(role).id, signal=sig.name)

    def wait(self, role: str, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while True:
            state = self._state(role)
            if not state.get("Running") and state.get("Status") != "created":
                return self._exit_code_of(role, state)
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)

    def kill(self, role: str) -> None:
        """SIGKILL the whole container (every process in it)."""
        from docker.errors import APIError
        with self._lock:
            if not self._state(role).get("Running"):
                return
            self._sent[role].add(signal.SIGKILL)
            cid = self._container(role).id
            try:
                self.client.api.kill(cid, signal="SIGKILL")
            except APIError:
                if self._state(role).get("Paused"):   # an engine that refuses: thaw first
                    self._container(role).unpause()
                    self.client.api.kill(cid, signal="SIGKILL")
                else:
                    raise
            self.wait(role, timeout=10.0)

    def pause(self, role: str) -> None:
        """Freeze every process of the container (cgroup freezer, like SIGSTOP)."""
        if not self._state(role).get("Paused"):
            self._container(role).pause()

    def resume(self, role: str) -> None:
        if self._state(role).get("Paused"):
            self._container(role).unpause()

    def restart(self, role: str, *, timeout: float = 10.0) -> None:
        """Stop whatever runs, start again with the environment of the last start; the
        memory volume is kept (a crash-restart)."""
        self.stop(role)
        self.start(role, self._last_env[role], timeout=timeout)

    def running(self, role: str) -> bool:
        """True while the container runs, paused included (a stopped process is alive)."""
        return bool(self._state(role).get("Running"))

    def exit_code(self, role: str) -> int | None:
        return self._exit_code_of(role, self._state(role))

    def _exit_code_of(self, role: str, state: dict) -> int | None:
        """As the process driver reports it: None while running or never started; a
        negative signal number when a signal the driver sent ended it (the container's
        init reports 128+N), else the exit status."""
        if state.get("Running") or state.get("Status") == "created":
            return None
        code = state.get("ExitCode")
        if isinstance(code, int) and code > 128 and (code - 128) in self._sent[role]:
            return -(code - 128)
        return code

    def pid(self, role: str) -> int | None:
        """Host pid of the container's init (None when not running)."""
        state = self._state(role)
        return state.get("Pid") or None if state.get("Running") else None

    # -- memory ------------------------------------------------------------------------------
    def _archive(self, role: str, path: str) -> bytes:
        from docker.errors import NotFound
        try:
            stream, _ = self._container(role).get_archive(path)
        except NotFound:
            raise FileNotFoundError(f"{role}: {path}") from None
        return b"".join(stream)

    def _memory_tree(self, role: str) -> tuple[list[tarfile.TarInfo], dict[str, bytes]]:
        members, files = tar_listing(self._archive(role, CONTAINER_MEMORY_DIR))
        top = PurePosixPath(CONTAINER_MEMORY_DIR).name
        def rel(name: str) -> str:
            p = PurePosixPath(name)
            return PurePosixPath(*p.parts[1:]).as_posix() if p.parts[:1] == (top,) and \
                len(p.parts) > 1 else ("" if p.parts == (top,) else name)
        for m in members:
            m.name = rel(m.name)
        return members, {rel(k): v for k, v in files.items()}

    def memory_files(self, role: str) -> list[str]:
        members, _ = self._memory_tree(role)
        return sorted(m.name for m in members if m.isfile() and m.name)

    def read_memory(self, role: str, relpath: str) -> bytes:
        relpath = _safe_relpath(relpath)
        _, files = tar_listing(self._archive(role, f"{CONTAINER_MEMORY_DIR}/{relpath}"))
        name = PurePosixPath(relpath).name
        if name not in files:
            raise IsADirectoryError(f"{role}: {relpath} is not a regular file")
        return files[name]

    def write_memory(self, role: str, relpath: str, data: bytes, *, mode: int = 0o644,
                     replace_file_with_dir: bool = False) -> None:
        """Write a file into the memory volume, owned like the memory directory (so a
        non-root service can read it), creating missing parent directories."""
        relpath = _safe_relpath(relpath)
        members, _ = self._memory_tree(role)
        owner = next((m for m in members if m.name == ""), None)
        uid, gid = (owner.uid, owner.gid) if owner else (0, 0)
        existing_dirs = {m.name for m in members if m.isdir()}
        existing_files = {m.name for m in members if not m.isdir()}
        parents = [p.as_posix() for p in reversed(PurePosixPath(relpath).parents)
                   if p.as_posix() != "."]
        if not replace_file_with_dir:
            for p in parents:
                if p in existing_files:
                    raise NotADirectoryError(f"{role}: {p} is a file")
        new_dirs = tuple(p for p in parents if p not in existing_dirs)
        blob = single_file_tar(relpath, bytes(data), mode=mode, uid=uid, gid=gid,
                               new_dirs=new_dirs)
        self._container(role).put_archive(CONTAINER_MEMORY_DIR, blob)

    def make_unreadable(self, role: str, relpath: str) -> None:
        """As the process driver does: the record becomes a directory (unreadable as a
        file whatever the service's uid). Extracting a directory entry over a file
        replaces the file (the archive API does not forbid it unless asked to)."""
        relpath = _safe_relpath(relpath)
        members, _ = self._memory_tree(role)
        if any(m.name == relpath and m.isdir() for m in members):
            return
        self.write_memory(role, f"{relpath}/unreadable",
                          b"faultdrill: this record was replaced by a directory\n",
                          replace_file_with_dir=True)

    def place_file(self, role: str, name: str, data: bytes, *, mode: int = 0o444) -> str:
        """Put a file where `role`'s container can read it and return its path there
        (`/run/faultdrill/files/<role>/<name>`). Written with the archive API into the
        deployment's files volume, which works before the first start and survives
        container replacement; owned like the memory directory, i.e. by the image's
        service user, so a 0400 private key is still readable by the service."""
        name = _safe_relpath(name)
        members, _ = self._memory_tree(role)
        owner = next((m for m in members if m.name == ""), None)
        uid, gid = (owner.uid, owner.gid) if owner else (0, 0)
        relpath = f"{role}/{name}"
        parents = tuple(p.as_posix() for p in reversed(PurePosixPath(relpath).parents)
                        if p.as_posix() != ".")
        blob = single_file_tar(relpath, bytes(data), mode=mode, uid=uid, gid=gid,
                               new_dirs=parents)
        self._container(role).put_archive(CONTAINER_FILES_DIR, blob)
        return f"{CONTAINER_FILES_DIR}/{relpath}"

    def memory_dir(self, role: str) -> Path:
        """The volume's directory on the engine's host. Only usable by a grader running as
        root on that same host; checks should prefer read_memory/write_memory."""
        self._container(role)
        return Path(self.client.volumes.get(self._volumes[role]).attrs["Mountpoint"])

    # -- logs --------------------------------------------------------------------------------
    @staticmethod
    def _read_logs(container, stream: str) -> list[str]:
        raw = container.logs(stdout=stream == "stdout", stderr=stream == "stderr",
                             timestamps=False)
        return raw.decode("utf-8", errors="replace").splitlines()

    def logs(self, role: str, stream: str = "stderr", *, current_run: bool = False) -> list[str]:
        """Every line the service wrote to `stream` in this deployment (across restarts
        and container replacements), or only since the last start."""
        if stream not in ("stdout", "stderr"):
            raise ValueError("stream must be 'stdout' or 'stderr'")
        lines = list(self._old_logs[role][stream])
        c = self._containers.get(role)
        if c is not None and not self._closed:
            try:
                lines += self._read_logs(c, stream)
            except Exception:
                pass
        return lines[self._run_start[role][stream]:] if current_run else lines

    # -- teardown ----------------------------------------------------------------------------
    def close(self) -> CleanupReport:
        with self._lock:
            report = CleanupReport()
            if self._closed:
                return report
            self._closed = True
            release_ports(getattr(self, "_claimed_ports", ()))
            for role, c in list(self._containers.items()):
                try:
                    c.reload()
                    if c.attrs.get("State", {}).get("Running"):
                        if c.attrs["State"].get("Paused"):
                            c.unpause()
                        c.stop(timeout=2)
                        c.reload()
                    report.stopped[role] = c.attrs.get("State", {}).get("ExitCode")
                    self._save_logs(role, c)
                    c.remove(force=True, v=True)
                except Exception as exc:
                    if "No such container" not in str(exc):
                        report.errors.append(f"container {role}: {exc}")
            self._containers.clear()
            if self._plumbed and self._namespaces is not None:
                try:
                    dnet.run_steps(dnet.teardown_steps(self.link_names), self._namespaces)
                except dnet.NetworkIsolationError as exc:
                    report.errors.append(str(exc))
            if self._namespaces is not None:
                self._namespaces.close()
            if self._network is not None:
                try:
                    self._network.remove()
                except Exception as exc:
                    report.errors.append(f"network {self.network_name}: {exc}")
            for name in self._created_volumes:
                try:
                    self.client.volumes.get(name).remove(force=True)
                    report.removed_dirs.append(f"volume:{name}")
                except Exception as exc:
                    report.errors.append(f"volume {name}: {exc}")
            # Anything else labelled with this run (e.g. from an interrupted start).
            try:
                leftovers = remove_labelled(self.client, run_id=self.run_id, images=False)
                report.errors.extend(leftovers["errors"])
            except Exception as exc:
                report.errors.append(f"sweep of run {self.run_id}: {exc}")
            # Every container of the run force-removed without an error: its processes
            # are gone with it (the engine kills a container's whole PID namespace).
            report.proven_gone = not report.errors and not report.survivors
            _LIVE.discard(self)
            return report
