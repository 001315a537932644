# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Where a site lives: its configuration, its database and its state.

A *site* is a trytond database plus a configuration file from ``sites/``.
Paths in that file are relative to the project root (the directory holding
``sites/``); trytond wants absolute paths, so the site writes an *overlay*
configuration, ``var/<name>/trytond.conf``, with the resolved paths, and every
trytond process (in-process or child) reads ``<config> <overlay>`` in that
order.  ``var/<name>/site.json`` records how the site was built; it is written
last, so its presence with ``complete: true`` means the build finished."""
import configparser
import datetime
import hashlib
import importlib.util
import json
import os
from pathlib import Path

from hrp import MODULES

__all__ = ['SiteError', 'Site', 'find_root']

# Options holding a file system path, resolved against the project root.
PATH_OPTIONS = [
    ('database', 'path'),
    ('web', 'root'),
    ('password', 'forbidden'),
    ('ssl', 'certificate'),
    ('ssl', 'privatekey'),
    ]
# Source files whose change requires a module update of the database.
MODULE_SUFFIXES = {'.py', '.xml', '.cfg', '.po'}


class SiteError(Exception):
    "An error reported to the user as a one-line message, without traceback."


def _is_root(path):
    return (path / 'sites' / 'demo.conf').is_file()


def find_root(config=None):
    """The project root: $HRP_HOME, else the parent of the ``sites/``
    directory of the given configuration, else the nearest ancestor of the
    working directory holding ``sites/demo.conf``, else the source checkout
    this package was installed from (editable install), else the working
    directory."""
    if os.environ.get('HRP_HOME'):
        return Path(os.environ['HRP_HOME']).resolve()
    if config is not None:
        config = Path(config)
        if config.is_file() and config.resolve().parent.name == 'sites':
            return config.resolve().parent.parent
    cwd = Path.cwd().resolve()
    for path in [cwd, *cwd.parents]:
        if _is_root(path):
            return path
    checkout = Path(__file__).resolve().parents[2]
    if _is_root(checkout):
        return checkout
    return cwd


def env_option(section, option):
    "The value trytond would take from the environment for the option."
    key = f'TRYTOND_{section}__{option}'.upper().replace(' ', '_')
    for name, value in os.environ.items():
        if name.upper() == key:
            return value
    if (section, option) == ('database', 'uri'):
        return os.environ.get('TRYTOND_DATABASE_URI')
    return None


class Site:

    def __init__(self, name='demo', config=None, root=None):
        if not name or '/' in name or name.startswith('.'):
            raise SiteError(f"invalid site name {name!r}")
        self.name = name
        self.root = Path(root) if root else find_root(config)
        if config is None:
            config = self.root / 'sites' / 'demo.conf'
        config = Path(config)
        if not config.is_absolute() and not config.is_file():
            config = self.root / config
        if not config.is_file():
            raise SiteError(f"configuration file {config} not found")
        self.config_file = config.resolve()
        self.raw = configparser.RawConfigParser()
        with open(self.config_file, encoding='utf-8') as fp:
            self.raw.read_file(fp)
        self.state_dir = self.root / 'var' / name
        self.overlay_file = self.state_dir / 'trytond.conf'
        self.info_file = self.state_dir / 'site.json'
        self.sao_dir = self.root / 'var' / 'sao' / 'package'

    # Configuration

    def get(self, section, option, default=None):
        """The effective value of an option as trytond sees it: file, then
        environment, then ``default``.  Paths are made absolute."""
        value = None
        if self.raw.has_option(section, option):
            value = self.raw.get(section, option)
        elif env_option(section, option) is not None:
            value = env_option(section, option)
        if value is None:
            return default
        if (section, option) in PATH_OPTIONS:
            value = self._resolve(section, option, value)
        return value

    def _resolve(self, section, option, value):
        if section == 'ssl' and value.lower() in {
                'true', 'false', 'yes', 'no', 'on', 'off', '1', '0', ''}:
            return value
        path = Path(os.path.expanduser(value))
        if not path.is_absolute():
            path = self.root / path
        return str(path)

    def overlay(self, listen=None):
        "The options the overlay configuration sets."
        options = {}
        for section, option in PATH_OPTIONS:
            if self.raw.has_option(section, option):
                value = self.raw.get(section, option)
                resolved = self._resolve(section, option, value)
                if resolved != value:
                    options.setdefault(section, {})[option] = resolved
        defaults = {
            ('database', 'path'): self.state_dir / 'filestore',
            ('web', 'root'): self.sao_dir,
            }
        for (section, option), value in defaults.items():
            if (not self.raw.has_option(section, option)
                    and env_option(section, option) is None):
                options.setdefault(section, {})[option] = str(value)
        if listen:
            options.setdefault('web', {})['listen'] = listen
        return options

    def write_overlay(self, listen=None):
        "Write the overlay and return the configuration files to pass."
        self.state_dir.mkdir(parents=True, exist_ok=True)
        lines = [
            f'# Generated by the hrp command from {self.config_file}:',
            '# absolute paths for trytond.  Do not edit; it is rewritten by',
            '# every hrp command.',
            ]
        for section, options in self.overlay(listen).items():
            lines.append(f'\n[{section}]')
            for option, value in options.items():
                lines.append(f'{option} = {value}')
        text = '\n'.join(lines) + '\n'
        if (not self.overlay_file.exists()
                or self.overlay_file.read_text(encoding='utf-8') != text):
            tmp = self.overlay_file.with_suffix('.tmp')
            tmp.write_text(text, encoding='utf-8')
            tmp.replace(self.overlay_file)
        return self.config_files

    @property
    def config_files(self):
        return [str(self.config_file), str(self.overlay_file)]

    @property
    def uri(self):
        return self.get('database', 'uri', 'sqlite://')

    @property
    def backend(self):
        return self.uri.split(':', 1)[0].split('+', 1)[0]

    @property
    def db_path(self):
        return Path(self.get(
                'database', 'path', str(self.state_dir / 'filestore')))

    @property
    def sqlite_file(self):
        return self.db_path / f'{self.name}.sqlite'

    def listen(self, host=None, port=None):
        "The (host, port) the server listens on."
        listen = self.get('web', 'listen', 'localhost:8000')
        first = listen.split(',')[0].strip()
        if first.startswith('['):
            chost, _, cport = first[1:].partition(']:')
        else:
            chost, _, cport = first.rpartition(':')
        return host or chost or 'localhost', int(port or cport or 8000)

    def queue_worker(self):
        value = self.get('queue', 'worker', 'False')
        return value.strip().lower() in {'1', 'yes', 'true', 'on'}

    # State

    def database_exists(self):
        "Whether the database exists and holds a Tryton schema."
        if self.backend == 'sqlite':
            if not self.sqlite_file.is_file():
                return False
            import sqlite3
            try:
                connection = sqlite3.connect(
                    f'file:{self.sqlite_file}?mode=ro', uri=True)
                try:
                    cursor = connection.execute(
                        "SELECT name FROM sqlite_master "
                        "WHERE type = 'table' AND name = 'ir_configuration'")
                    return cursor.fetchone() is not None
                finally:
                    connection.close()
            except sqlite3.Error:
                return False
        elif self.backend == 'postgresql':
            import psycopg
            try:
                with psycopg.connect(
                        self._pg_conninfo(), connect_timeout=10) as conn:
                    cursor = conn.execute(
                        "SELECT to_regclass('ir_configuration') IS NOT NULL")
                    return bool(cursor.fetchone()[0])
            except psycopg.OperationalError as exception:
                if 'does not exist' in str(exception):
                    return False
                raise SiteError(
                    f"cannot connect to PostgreSQL: {exception}".strip())
        raise SiteError(f"unsupported database backend {self.backend!r}")

    def _pg_conninfo(self):
        from urllib.parse import unquote, urlparse
        uri = urlparse(self.uri)
        params = {'dbname': self.name}
        if uri.hostname:
            params['host'] = uri.hostname
        if uri.port:
            params['port'] = uri.port
        if uri.username:
            params['user'] = unquote(uri.username)
        if uri.password:
            params['password'] = unquote(uri.password)
        return ' '.join(
            f"{k}='{str(v)}'" for k, v in params.items())

    def load_info(self):
        try:
            with open(self.info_file, encoding='utf-8') as fp:
                return json.load(fp)
        except (FileNotFoundError, ValueError):
            return None

    def save_info(self, info):
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.info_file.with_suffix('.tmp')
        with open(tmp, 'w', encoding='utf-8') as fp:
            json.dump(info, fp, ensure_ascii=False, indent=2)
            fp.write('\n')
        tmp.replace(self.info_file)

    def status(self):
        """'ready' (built completely), 'incomplete' (a database without a
        finished build) or 'missing'."""
        exists = self.database_exists()
        info = self.load_info()
        if exists and info and info.get('complete'):
            return 'ready'
        if exists:
            return 'incomplete'
        return 'missing'

    def forget(self):
        "Remove the build record (not the database)."
        for path in [self.info_file]:
            try:
                path.unlink()
            except FileNotFoundError:
                pass

    def remove_sqlite(self):
        for suffix in ['', '-wal', '-shm', '-journal']:
            try:
                Path(str(self.sqlite_file) + suffix).unlink()
            except FileNotFoundError:
                pass


def modules_fingerprint(modules=None, with_tests=False):
    """A digest of the source files of the HRP modules: when it differs from
    the one recorded at the last build or update, the database needs a
    module update.  with_tests includes the modules' tests (which may
    register models of their own)."""
    digest = hashlib.sha256()
    for module in modules or MODULES:
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            digest.update(f'{module}:missing\n'.encode())
            continue
        base = Path(list(spec.submodule_search_locations)[0])
        files = sorted(
            p for p in base.rglob('*')
            if p.suffix in MODULE_SUFFIXES and p.is_file()
            and '__pycache__' not in p.parts
            and (with_tests or 'tests' not in p.relative_to(base).parts))
        for path in files:
            digest.update(f'{module}/{path.relative_to(base)}\n'.encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def activated_modules(modules):
    "The modules activating modules activates: them and their dependencies"
    from trytond.modules import get_module_info
    activated, todo = set(), list(modules)
    while todo:
        module = todo.pop()
        if module not in activated:
            activated.add(module)
            todo.extend((get_module_info(module) or {}).get('depends', []))
    return activated


def test_template_name(name):
    """The name of the template database trytond's tests keep for name: a
    module list joined by "-", then "--" and the language or the set-up
    functions of a scenario.  The list is replaced by every module it
    activates, so that the tests activating the same modules (hrp_equipment
    alone, or with the two modules it depends on) share one template"""
    modules, separator, rest = name.partition('--')
    return '-'.join(sorted(activated_modules(modules.split('-')))) + (
        separator + rest)


def pg_test_template(cache_uri, name, fingerprint=None):
    """The PostgreSQL template database trytond's tests keep for name (see
    test_template_name) under cache_uri (DB_CACHE):
    test-<fingerprint>-<hash of the template name>, at most 63 characters,
    the fingerprint (by default that of the modules' sources with their
    tests) keeping a change to a module from reusing a stale template"""
    if fingerprint is None:
        fingerprint = modules_fingerprint(with_tests=True)[:16]
    hash_name = hashlib.shake_128(
        test_template_name(name).encode('utf8')).hexdigest(20)
    return f"{cache_uri}/test-{fingerprint}-{hash_name}"


def now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec='seconds')
