# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""The throw-away database of a benchmark, set up by trytond's test tools.

Call ``configure(uri, name)`` before importing ``trytond.tests``: on
PostgreSQL the benchmark's database is created from the test suite's
template database of the same sources (built by the first run that needs
it, then kept: see conftest.py), so that it is ready in seconds; on SQLite
it lives in memory."""
import os
import statistics


def configure(uri, name):
    "Point trytond's test set-up at a new database name_<pid> on uri"
    os.environ['TRYTOND_DATABASE_URI'] = uri
    os.environ.pop('DB_CACHE', None)
    if uri.startswith('sqlite'):
        os.environ['DB_NAME'] = ':memory:'
        return
    os.environ['DB_NAME'] = f'{name}_{os.getpid()}'
    os.environ['DB_CACHE'] = uri.rstrip('/')
    from trytond.tests import test_tryton

    from hrp.site import pg_test_template
    test_tryton._db_cache_file = pg_test_template


def report(label, times):
    "Print the median and the maximum of times (seconds) in milliseconds"
    times = sorted(times)
    print(f"{label}: median {statistics.median(times) * 1000:.0f} ms, "
        f"max {times[-1] * 1000:.0f} ms ({len(times)} runs)")
