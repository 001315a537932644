# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Test set-up shared by the module tests and the top-level tests.

SQLite (default): each test class builds its database from a cached copy
keyed by a hash of the modules' sources, so that a change to a module never
reuses a stale database.  PostgreSQL: set ``HRP_TEST_DB_URI`` to a
``postgresql://`` URI; template databases are built once per run.

Scenario doctests (``apps/*/tests/scenario_*.rst``) are collected as pytest
items and run with trytond's doctest set-up, checker and options."""
import doctest
import functools
import io
import os
import pathlib
import unittest

import pytest

from hrp.site import (
    modules_fingerprint, pg_test_template, test_template_name)

ROOT = pathlib.Path(__file__).resolve().parent

pytest_plugins = [
    'tests.desk', 'tests.peers.protocol_fixtures', 'tests.peers.fixtures']


def _configure_database():
    uri = os.environ.get('HRP_TEST_DB_URI')
    if uri:
        if not uri.startswith('postgresql://'):
            raise pytest.UsageError(
                "HRP_TEST_DB_URI must be a postgresql:// URI")
        os.environ['TRYTOND_DATABASE_URI'] = uri
        os.environ.setdefault('DB_CACHE', uri.rstrip('/'))
        os.environ.setdefault('DB_NAME', f'test_hrp_{os.getpid()}')
    else:
        os.environ.setdefault('TRYTOND_DATABASE_URI', 'sqlite://')
        os.environ.setdefault('DB_CACHE', str(
                ROOT / 'var' / 'test-cache'
                / modules_fingerprint(with_tests=True)[:16]))
    if os.environ['TRYTOND_DATABASE_URI'].startswith('sqlite'):
        # The in-memory test database is one SQLite connection shared by
        # every transaction of the process.  Once the cache's clean_timeout
        # (300 s) has passed, the next transaction started, even one nested
        # in a test (an integrity error's report, a read-only wizard's save),
        # syncs the cache on an autocommit connection: Python's sqlite3
        # commits the pending transaction when isolation_level becomes None,
        # so the test's data outlived its rollback and the next test of its
        # class started with it.  One process has nothing to sync with.
        from trytond.config import config
        config.set('cache', 'clean_timeout', str(10 ** 9))


_configure_database()


FINGERPRINT = modules_fingerprint(with_tests=True)[:16]


def _pg_cache_file(path, name):
    "The template database of the module list name for these sources"
    return pg_test_template(os.environ['DB_CACHE'], name, FINGERPRINT)


def _sqlite_cache_file(path, name, _cache_file=None):
    """The cached database of name, shared by the module lists that
    activate the same modules (see hrp.site.test_template_name)"""
    return _cache_file(path, test_template_name(name))


def _drop_pg_leftovers():
    """Drop the template databases of other sources and the databases of
    test runs that are no longer alive; the templates of these sources and
    the databases of runs still going are kept, so that two runs on one
    server do not disturb each other."""
    import psycopg
    uri = os.environ['TRYTOND_DATABASE_URI']
    with psycopg.connect(uri.rstrip('/') + '/postgres',
            autocommit=True) as conn:
        names = [r[0] for r in conn.execute(
                "SELECT datname FROM pg_database "
                "WHERE datname LIKE 'test-%%' OR datname LIKE 'test_hrp_%%'")]
        for name in names:
            if name.startswith('test_hrp_'):
                pid = name[len('test_hrp_'):].split('_')[0]
                if pid.isdigit() and _alive(int(pid)):
                    continue
            elif name.startswith(f'test-{FINGERPRINT}-'):
                continue
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def pytest_sessionstart(session):
    from trytond.tests import test_tryton
    if os.environ['TRYTOND_DATABASE_URI'].startswith('postgresql'):
        test_tryton._db_cache_file = _pg_cache_file
        _drop_pg_leftovers()
    else:
        test_tryton._db_cache_file = functools.partial(
            _sqlite_cache_file, _cache_file=test_tryton._db_cache_file)


def pytest_collection_modifyitems(config, items):
    """On PostgreSQL, leave out trytond's generic checks of the modules'
    definitions (views, depends, access, buttons...): they do not depend on
    the database backend and the SQLite pass runs them"""
    if not os.environ['TRYTOND_DATABASE_URI'].startswith('postgresql'):
        return
    from trytond.tests.test_tryton import ModuleTestCase
    generic = {n for n in dir(ModuleTestCase) if n.startswith('test_')}
    kept, deselected = [], []
    for item in items:
        cls = getattr(item, 'cls', None)
        if (cls is not None and issubclass(cls, ModuleTestCase)
                and item.name in generic
                and getattr(cls, item.name) is getattr(
                    ModuleTestCase, item.name)):
            deselected.append(item)
        else:
            kept.append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


def pytest_collect_file(parent, file_path):
    if (file_path.suffix == '.rst' and file_path.name.startswith('scenario')
            and file_path.parent.name == 'tests'):
        return ScenarioFile.from_parent(parent, path=file_path)


class ScenarioFile(pytest.File):
    def collect(self):
        yield ScenarioItem.from_parent(self, name=self.path.stem)


class ScenarioItem(pytest.Item):
    def runtest(self):
        from trytond import backend
        from trytond.tests.test_tryton import (
            STRIP_DECIMAL, doctest_checker, doctest_setup, doctest_teardown)
        optionflags = (
            doctest.REPORT_ONLY_FIRST_FAILURE
            | doctest.ELLIPSIS
            | doctest.IGNORE_EXCEPTION_DETAIL)
        if backend.name == 'sqlite':
            optionflags |= STRIP_DECIMAL
        suite = doctest.DocFileSuite(
            str(self.path), module_relative=False,
            setUp=doctest_setup, tearDown=doctest_teardown,
            encoding='utf-8', checker=doctest_checker,
            optionflags=optionflags)
        output = io.StringIO()
        result = unittest.TextTestRunner(stream=output, verbosity=0).run(
            suite)
        if not result.wasSuccessful() or result.testsRun != 1:
            raise ScenarioFailure(output.getvalue())

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, ScenarioFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, 0, f"scenario: {self.name}"


class ScenarioFailure(Exception):
    pass
