# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""A real GNU Health 5.0 server for the tests.

GNU Health 5.0 runs on Tryton 7.0 while HRP runs on Tryton 8.0, so the peer
lives in a virtualenv of its own::

    var/peers/gnuhealth-<install key>/
        venv/                     python3.11 -m venv + pip install gnuhealth…
        db-<database key>.sqlite  the seeded database (tests/peers/
                                  gnuhealth_seed.py), never served itself
        runs/<id>/                a copy of it per run, served by trytond
        timings.json              how long the last builds took

The install key hashes the interpreter's version and REQUIREMENTS; the
database key hashes the versions pip installed, MODULES and the seed
script.  Both are built once, under a file lock (two test runs may start
together), so that later runs start a server in seconds.

Usage::

    with GNUHealthPeer.start_new() as peer:
        peer.url, peer.database, peer.login, peer.password

Run ``python -m tests.peers.gnuhealth_peer`` to build the caches and serve
the peer until interrupted (prints its URL and logins)."""
import base64
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[2]
HERE = pathlib.Path(__file__).resolve().parent
SEED_SCRIPT = HERE / 'gnuhealth_seed.py'
PEERS_DIR = pathlib.Path(
    os.environ.get('HRP_PEERS_DIR', ROOT / 'var' / 'peers'))

REQUIREMENTS = [
    'gnuhealth>=5.0,<5.1',
    'gnuhealth-inpatient>=5.0,<5.1',
    'gnuhealth-surgery>=5.0,<5.1',
    'gnuhealth-services>=5.0,<5.1',
    ]
MODULES = ['health_inpatient', 'health_surgery', 'health_services']
DATABASE = 'gnuhealth'
# Test credentials of a throw-away database on 127.0.0.1
ADMIN_LOGIN = 'admin'
ADMIN_PASSWORD = 'admin-peer-2026'
INTEGRATION_LOGIN = 'hrp.integration'
STANDBY_LOGIN = 'hrp.standby'
INTEGRATION_PASSWORD = 'Hrp-Integration-2026'

START_TIMEOUT = 90  # seconds for trytond to answer a login
INSTALL_TIMEOUT = 900
BUILD_TIMEOUT = 900


class PeerError(RuntimeError):
    "The GNU Health peer could not be built or started"


def _python():
    "The interpreter for the peer's virtualenv: python3.11"
    found = shutil.which('python3.11')
    if found:
        return found
    if sys.version_info[:2] == (3, 11):
        return sys.executable
    raise PeerError("python3.11 is needed to build the GNU Health peer")


def _digest(*parts):
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else str(part).encode())
        h.update(b'\0')
    return h.hexdigest()


def clean_environment(**extra):
    """The environment for the peer's processes: without what points Python
    or trytond at HRP's own packages and test databases"""
    env = {k: v for k, v in os.environ.items()
        if not k.startswith(('PYTHON', 'TRYTON', 'DB_', 'VIRTUAL_ENV'))}
    env.update(extra)
    return env


def _run(args, log, timeout, env=None):
    "Run args, appending its output to log; raise PeerError on failure"
    env = env or clean_environment()
    with open(log, 'ab') as out:
        out.write(f"$ {' '.join(map(str, args))}\n".encode())
        out.flush()
        try:
            subprocess.run(
                args, stdout=out, stderr=subprocess.STDOUT, check=True,
                timeout=timeout, env=env, stdin=subprocess.DEVNULL)
        except (subprocess.CalledProcessError,
                subprocess.TimeoutExpired) as exc:
            raise PeerError(f"{exc}; see {log}") from exc


@contextlib.contextmanager
def _locked(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, 'a') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def free_port():
    "A TCP port of 127.0.0.1 that nothing listens on (at this instant)"
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


class Installation:
    "The cached virtualenv and seeded database of one GNU Health version"

    def __init__(self, base=PEERS_DIR):
        python = _python()
        version = subprocess.run(
            [python, '-c', 'import sys; print(sys.version)'],
            capture_output=True, text=True, check=True,
            env=clean_environment()).stdout.strip()
        self.python = python
        self.install_key = _digest(version, *REQUIREMENTS)[:12]
        self.dir = pathlib.Path(base) / f'gnuhealth-{self.install_key}'
        self.venv = self.dir / 'venv'
        self.log = self.dir / 'build.log'
        self.timings = {}

    @property
    def bin(self):
        return self.venv / 'bin'

    def ensure(self):
        """Build what is missing; return the seeded database file.

        Records in self.timings the seconds spent on each step run."""
        with _locked(self.dir.with_suffix('.lock')):
            started = time.monotonic()
            self._ensure_venv()
            self.timings['venv_ready'] = time.monotonic() - started
            started = time.monotonic()
            database = self._ensure_database()
            self.timings['database_ready'] = time.monotonic() - started
        return database

    @property
    def _stamp(self):
        "Written last by the install: the versions pip installed"
        return self.venv / '.hrp-complete'

    def _ensure_venv(self):
        if self._stamp.exists():
            return
        if self.venv.exists():
            shutil.rmtree(self.venv)
        self.dir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        _run([self.python, '-m', 'venv', self.venv], self.log, 120)
        _run([self.bin / 'python', '-m', 'pip', 'install', '--quiet',
                *REQUIREMENTS], self.log, INSTALL_TIMEOUT)
        self.timings['venv_install'] = time.monotonic() - started
        self._save_timing('venv_install')
        self._stamp.write_text(subprocess.run(
                [self.bin / 'python', '-m', 'pip', 'freeze', '--all'],
                capture_output=True, text=True, check=True,
                env=clean_environment()).stdout)

    def frozen_versions(self):
        "The requirements pip installed, as pip freeze lists them"
        return self._stamp.read_text()

    def database_key(self):
        return _digest(
            self.frozen_versions(), *MODULES, SEED_SCRIPT.read_bytes(),
            ADMIN_PASSWORD, INTEGRATION_PASSWORD)[:12]

    def _ensure_database(self):
        key = self.database_key()
        cached = self.dir / f'db-{key}.sqlite'
        if cached.exists():
            return cached
        for old in self.dir.glob('db-*.sqlite'):
            old.unlink()
        started = time.monotonic()
        with tempfile.TemporaryDirectory(dir=self.dir) as build:
            build = pathlib.Path(build)
            config = write_config(build, build)
            (build / f'{DATABASE}.sqlite').touch()
            passfile = build / 'admin-password'
            passfile.write_text(ADMIN_PASSWORD)
            env = clean_environment(TRYTONPASSFILE=str(passfile))
            _run([self.bin / 'trytond-admin', '-c', config, '-d', DATABASE,
                    '--all', '--activate-dependencies',
                    '--email', 'admin@peer.invalid', '-u', *MODULES],
                self.log, BUILD_TIMEOUT, env=env)
            self.timings['database_build'] = time.monotonic() - started
            started = time.monotonic()
            env = clean_environment(
                HRP_PEER_INTEGRATION_PASSWORD=INTEGRATION_PASSWORD)
            _run([self.bin / 'python', SEED_SCRIPT, config, DATABASE],
                self.log, BUILD_TIMEOUT, env=env)
            self.timings['database_seed'] = time.monotonic() - started
            partial = cached.with_suffix('.partial')
            shutil.copyfile(build / f'{DATABASE}.sqlite', partial)
            partial.rename(cached)
        self._save_timing('database_build', 'database_seed')
        return cached

    def _save_timing(self, *names):
        path = self.dir / 'timings.json'
        try:
            saved = json.loads(path.read_text())
        except (OSError, ValueError):
            saved = {}
        saved.update({n: round(self.timings[n], 1) for n in names})
        path.write_text(json.dumps(saved, indent=2))


def write_config(directory, database_dir, port=None):
    "Write a trytond configuration for a database directory; return its path"
    lines = [
        '[database]',
        'uri = sqlite://',
        f'path = {database_dir}',
        '[web]',
        f'listen = 127.0.0.1:{port or 8000}',
        ]
    config = pathlib.Path(directory) / 'trytond.conf'
    config.write_text('\n'.join(lines) + '\n')
    return config


def rpc(url, database, method, params, session=None, timeout=10):
    """One JSON-RPC call to a Tryton 7.0 server, with the standard library
    (the tests read the peer back with it, independently of the transport
    under test).  Return the result; raise RuntimeError on an error."""
    data = json.dumps({'id': 0, 'method': method, 'params': params}).encode()
    request = urllib.request.Request(
        f'{url.rstrip("/")}/{database}/', data,
        {'Content-Type': 'application/json'})
    if session:
        request.add_header('Authorization', f'Session {session}')
    with urllib.request.urlopen(request, timeout=timeout) as response:
        reply = json.loads(response.read())
    if 'error' in reply:
        raise RuntimeError(f"{method}: {reply['error'][:1]}")
    return reply['result']


def login(url, database, username, password, timeout=10):
    "Return the value of an Authorization: Session header"
    user_id, session = rpc(url, database, 'common.db.login',
        [username, {'password': password}, 'en'], timeout=timeout)[:2]
    return base64.b64encode(
        f'{username}:{user_id}:{session}'.encode()).decode()


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def prune_runs(runs):
    """Remove the run directories of test sessions that died without
    stopping their server, and stop that server"""
    for run in runs.iterdir():
        owner = run.name.split('-', 1)[0]
        if not owner.isdigit() or _alive(int(owner)):
            continue
        try:
            server = int((run / 'server.pid').read_text())
            with open(f'/proc/{server}/cmdline', 'rb') as cmdline:
                ours = str(run).encode() in cmdline.read()
        except (OSError, ValueError):
            ours = False
        if ours:
            # The server runs in a process group of its own
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server, signal.SIGTERM)
        shutil.rmtree(run, ignore_errors=True)


class GNUHealthPeer:
    "A running trytond of GNU Health serving a fresh copy of the database"

    database = DATABASE
    admin_login = ADMIN_LOGIN
    admin_password = ADMIN_PASSWORD
    login = INTEGRATION_LOGIN
    standby_login = STANDBY_LOGIN
    password = INTEGRATION_PASSWORD

    def __init__(self, installation, seeded_database):
        self.installation = installation
        self.seeded_database = seeded_database
        self.process = None
        self.port = None
        self.run_dir = None
        self.timings = dict(installation.timings)

    @classmethod
    def start_new(cls, base=PEERS_DIR):
        installation = Installation(base)
        peer = cls(installation, installation.ensure())
        peer.start()
        return peer

    @property
    def url(self):
        return f'http://127.0.0.1:{self.port}/'

    @property
    def database_path(self):
        "The SQLite file this run serves"
        return self.run_dir / f'{DATABASE}.sqlite'

    def start(self):
        "Copy the seeded database and serve it; wait until logins work"
        started = time.monotonic()
        runs = self.installation.dir / 'runs'
        runs.mkdir(exist_ok=True)
        prune_runs(runs)
        self.run_dir = pathlib.Path(tempfile.mkdtemp(
                prefix=f'{os.getpid()}-', dir=runs))
        shutil.copyfile(
            self.seeded_database, self.run_dir / f'{DATABASE}.sqlite')
        for attempt in range(3):
            self.port = free_port()
            config = write_config(self.run_dir, self.run_dir, self.port)
            log = open(self.run_dir / 'trytond.log', 'ab')
            self.process = subprocess.Popen(
                [self.installation.bin / 'trytond', '-c', config,
                    '-d', DATABASE],
                stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
                env=clean_environment())
            log.close()
            (self.run_dir / 'server.pid').write_text(str(self.process.pid))
            if self._wait_ready():
                self.timings['server_start'] = time.monotonic() - started
                return self
            self._stop_process()
        raise PeerError(
            f"GNU Health did not start; see {self.run_dir / 'trytond.log'}")

    def _wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False  # e.g. the port was taken meanwhile
            try:
                login(self.url, DATABASE, ADMIN_LOGIN, ADMIN_PASSWORD,
                    timeout=5)
                return True
            except (OSError, ValueError, RuntimeError):
                time.sleep(0.1)
        return False

    def admin_session(self):
        return login(self.url, DATABASE, ADMIN_LOGIN, ADMIN_PASSWORD)

    def admin_rpc(self, method, params, session=None):
        "Call the peer as its administrator (to check what the tests did)"
        return rpc(self.url, DATABASE, method, params,
            session or self.admin_session())

    def _stop_process(self):
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)

    def stop(self):
        "Stop the server and forget this run's database"
        self._stop_process()
        if self.run_dir is not None:
            shutil.rmtree(self.run_dir, ignore_errors=True)
            self.run_dir = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def main():
    logging.basicConfig(level=logging.INFO)
    started = time.monotonic()
    peer = GNUHealthPeer.start_new()
    timings = {k: round(v, 1) for k, v in peer.timings.items()}
    print(f"GNU Health {peer.url} database {peer.database} "
        f"(ready in {time.monotonic() - started:.1f} s; timings {timings})")
    print(f"  admin: {peer.admin_login} / {peer.admin_password}")
    print(f"  integration: {peer.login} / {peer.password}")

    def interrupt(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, interrupt)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        peer.stop()


if __name__ == '__main__':
    main()
