# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""The test harness itself: what conftest.py sets up for trytond's tests"""
import datetime as dt
import unittest

from trytond import backend
from trytond.cache import Cache
from trytond.pool import Pool
from trytond.tests.test_tryton import (
    activate_module, drop_db, with_transaction)
from trytond.transaction import Transaction

GROUP = "harness: rolled back"


@unittest.skipUnless(backend.name == 'sqlite',
    "only SQLite shares one connection between the transactions")
class HarnessTestCase(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        drop_db()
        activate_module('res')

    @classmethod
    def tearDownClass(cls):
        drop_db()

    @with_transaction()
    def create_group_and_sync_cache(self):
        Group = Pool().get('res.group')
        Group.create([{'name': GROUP}])
        # The cache was last cleaned long ago, as in a long test run
        saved = Cache._clean_last
        Cache._clean_last = dt.datetime.now() - dt.timedelta(days=1)
        try:
            Cache.sync(Transaction())
        finally:
            Cache._clean_last = saved

    @with_transaction()
    def count_groups(self):
        return Pool().get('res.group').search_count([('name', '=', GROUP)])

    def test_rollback_after_cache_sync(self):
        "A test's changes end with its rollback even when the cache syncs"
        self.create_group_and_sync_cache()
        self.assertEqual(self.count_groups(), 0)
