# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""PACS usage feeds: CSV files (directory job and upload), the HTTP push
route with a user application key, re-sends and usage_for."""
import datetime as dt
import json
import pathlib
import tempfile
import unittest
from decimal import Decimal

from werkzeug.test import Client

from trytond.modules.company.tests import create_company, set_company
from trytond.pool import Pool
from trytond.tests.test_tryton import DB_NAME, activate_module, drop_db
from trytond.wsgi import app

from ..exceptions import CatalogueImportError, PacsUsageError
from ..pacs import APPLICATION, Usage, parse_usage_csv, parse_usage_json
from .test_chargeitem import call

TODAY = dt.date(2026, 11, 20)
GOOD = (
    "device,day,exams,hours\n"
    "CT01,2026-11-18,52,10.5\n"
    "MR01,20261118,18,9.25\n"
    "CT01,2026/11/19,47,9\n")


class PacsTestCase(unittest.TestCase):
    "Test the PACS usage feeds"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        drop_db()
        activate_module(['his_connector'])
        cls.spool = tempfile.TemporaryDirectory()
        cls.directory = pathlib.Path(cls.spool.name)

        def setup():
            pool = Pool()
            Endpoint = pool.get('his.endpoint')
            User = pool.get('res.user')
            Application = pool.get('res.user.application')
            ModelData = pool.get('ir.model.data')
            company = create_company(name="PACS Hospital")
            with set_company(company):
                csv_, http = Endpoint.create([{
                            'name': "PACS CSV", 'purpose': 'pacs',
                            'kind': 'pacs_csv', 'url': str(cls.directory),
                            }, {
                            'name': "PACS HTTP", 'purpose': 'pacs',
                            'kind': 'pacs_http',
                            'url': 'https://pacs.example.org/',
                            }])
            feed, = User.create([{
                        'name': "PACS", 'login': 'pacs.feed',
                        'company': company.id,
                        'companies': [('add', [company.id])],
                        'groups': [('add', [ModelData.get_id(
                                        'his_connector',
                                        'group_pacs_feed')])],
                        }])
            key, rest_key = Application.create([{
                        'user': feed.id, 'application': APPLICATION,
                        'state': 'validated',
                        }, {
                        'user': feed.id, 'application': 'rest',
                        'state': 'validated',
                        }])
            return (company.id, csv_.id, http.id, key.key, rest_key.key)
        (cls.company_id, cls.csv_id, cls.http_id, cls.key,
            cls.rest_key) = call(setup)

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.spool.cleanup()
        drop_db()

    def call(self, func):
        return call(func, self.company_id)

    def usages(self, endpoint_id):
        def read():
            Usage_ = Pool().get('his.pacs.usage')
            return {
                (u.device, u.day): (u.exams, u.hours, u.source)
                for u in Usage_.search([('endpoint', '=', endpoint_id)])}
        return self.call(read)

    def test_parse_csv(self):
        "Test PACS exports in UTF-8 and GB18030 with Chinese headers"
        expected = [
            Usage('CT01', dt.date(2026, 11, 18), 52, Decimal('10.50')),
            Usage('MR01', dt.date(2026, 11, 18), 18, Decimal('9.25')),
            Usage('CT01', dt.date(2026, 11, 19), 47, Decimal('9.00')),
            ]
        self.assertEqual(
            parse_usage_csv(GOOD.encode('utf-8-sig'), today=TODAY), expected)
        chinese = GOOD.replace(
            'device,day,exams,hours', '设备,日期,检查人次,使用时长')
        self.assertEqual(
            parse_usage_csv(chinese.encode('gb18030'), today=TODAY),
            expected)

    def test_parse_errors(self):
        "Test every bad line is reported, nothing is returned"
        data = (
            "device,day,exams,hours\n"
            "CT01,2026-11-18,52,10\n"
            ",2026-11-18,1,1\n"
            "CT02,2026-13-01,1,1\n"
            "CT02,2026-11-21,1,1\n"
            "CT03,2026-11-18,-1,1\n"
            "CT04,2026-11-18,2.5,1\n"
            "CT05,2026-11-18,3,25\n"
            "CT01,2026-11-18,9,9\n").encode('utf-8')

        def parse():
            with self.assertRaises(CatalogueImportError) as cm:
                parse_usage_csv(data, today=TODAY)
            return cm.exception.message.splitlines()
        lines = self.call(parse)
        self.assertEqual([line.split(':')[0] for line in lines[:-1]], [
                'Line 3', 'Line 4', 'Line 5', 'Line 6', 'Line 7', 'Line 8',
                'Line 9'])
        self.assertIn('in the future', lines[2])
        self.assertIn('first at 2', lines[6])

        def parse_json():
            for body in [{'device': 'CT01'}, 'x', None]:
                with self.assertRaises(PacsUsageError):
                    parse_usage_json(body, today=TODAY)
            with self.assertRaises(PacsUsageError) as cm:
                parse_usage_json([
                        {'device': 'CT01', 'day': '2026-11-18', 'exams': 3,
                            'hours': 2},
                        {'device': 'CT01', 'day': '2026-11-18',
                            'exams': True, 'hours': 2},
                        7], today=TODAY)
            return cm.exception.message.splitlines()
        lines = self.call(parse_json)
        self.assertEqual([line.split(':')[0] for line in lines[:-1]], [
                'Row 2', 'Row 3'])

    def test_record_and_resend(self):
        "Test a re-send replaces the figures and keeps the previous ones"
        def record(usages):
            pool = Pool()
            PacsUsage = pool.get('his.pacs.usage')
            Endpoint = pool.get('his.endpoint')
            return PacsUsage.record_usage(
                Endpoint(self.http_id), usages, 'http')
        day = dt.date(2026, 10, 1)
        first = [
            Usage('US01', day, 30, Decimal('8')),
            Usage('US02', day, 20, Decimal('6')),
            ]
        self.assertEqual(self.call(lambda: record(first)), {
                'created': 2, 'replaced': 0, 'unchanged': 0})
        self.assertEqual(self.call(lambda: record(first[:1] + [
                        Usage('US02', day, 21, Decimal('6.5'))])), {
                'created': 0, 'replaced': 1, 'unchanged': 1})

        def check():
            pool = Pool()
            PacsUsage = pool.get('his.pacs.usage')
            usage, = PacsUsage.search([('device', '=', 'US02')])
            self.assertEqual((usage.exams, usage.hours), (21, Decimal('6.5')))
            revision, = usage.revisions
            self.assertEqual(
                (revision.exams, revision.hours, revision.source),
                (20, Decimal('6'), 'http'))
            self.assertEqual(revision.replaced_by.id, 1)
            # usage_for: by device codes and dates, ordered
            found = PacsUsage.usage_for(
                ['US02', 'US01', 'XX'], day, day + dt.timedelta(days=1))
            self.assertEqual(
                [(u.device, u.day) for u in found],
                [('US01', day), ('US02', day)])
            self.assertEqual(PacsUsage.usage_for(
                    ['US01'], day + dt.timedelta(days=1), TODAY), [])
        self.call(check)

    def test_directory(self):
        "Test the directory job: good files stored and moved, bad ones not"
        directory = self.directory
        (directory / 'a-good.csv').write_text(GOOD, encoding='gb18030')
        (directory / 'b-bad.CSV').write_text(
            "device,day,exams,hours\nDR01,2026-11-18,5,1\nDR01,x,1,1\n",
            encoding='utf-8')
        (directory / 'c-partial.tmp').write_text('device', encoding='utf-8')

        def run_and_fail():
            Pool().get('his.pacs.usage').import_directories()
            raise RuntimeError("rolled back")
        with self.assertRaises(RuntimeError):
            self.call(run_and_fail)
        # Rolled back: nothing moved
        self.assertEqual(
            sorted(p.name for p in directory.iterdir() if p.is_file()),
            ['a-good.csv', 'b-bad.CSV', 'c-partial.tmp'])

        self.call(lambda: Pool().get('his.pacs.usage').import_directories())
        self.assertEqual(
            sorted(p.name for p in directory.iterdir() if p.is_file()),
            ['c-partial.tmp'])
        self.assertTrue((directory / 'done' / 'a-good.csv').exists())
        self.assertTrue((directory / 'error' / 'b-bad.CSV').exists())
        reason = (directory / 'error' / 'b-bad.CSV.error.txt').read_text(
            encoding='utf-8')
        self.assertTrue(reason.startswith('Line 3: the day "x"'), reason)
        usages = self.usages(self.csv_id)
        self.assertEqual(usages[('CT01', dt.date(2026, 11, 18))], (
                52, Decimal('10.5'), 'csv'))
        self.assertEqual(
            len([k for k in usages if k[0] in {'CT01', 'MR01'}]), 3)
        self.assertNotIn('DR01', {d for d, _ in usages})

        # The same file again: nothing changes, the copy is kept apart
        (directory / 'a-good.csv').write_text(GOOD, encoding='utf-8')
        self.call(lambda: Pool().get('his.pacs.usage').import_directories())
        self.assertEqual(len(list((directory / 'done').iterdir())), 2)
        self.assertEqual(usages, self.usages(self.csv_id))

    def test_wizard(self):
        "Test the upload wizard"
        def run(data):
            Wizard = Pool().get('his.pacs.usage.import', type='wizard')
            session_id, _, _ = Wizard.create()
            wizard = Wizard(session_id)
            wizard.start.endpoint = self.csv_id
            wizard.start.file = data
            wizard.start.file_name = 'upload.csv'
            action, _ = wizard.do_import_({})
            return action
        data = "device,day,exams,hours\nUP01,2026-11-01,3,1.5\n"
        self.call(lambda: run(data.encode('utf-8')))
        with self.assertRaises(CatalogueImportError):
            self.call(lambda: run(b'device,day\nUP02,2026-11-01\n'))
        usages = self.usages(self.csv_id)
        self.assertEqual(
            usages[('UP01', dt.date(2026, 11, 1))], (3, Decimal('1.5'), 'csv'))
        self.assertNotIn('UP02', {d for d, _ in usages})

    def test_http_push(self):
        "Test the HTTP push: key, bad rows, counts, re-send"
        client = Client(app)
        url = f'/{DB_NAME}/his_connector/pacs/usage'
        rows = [
            {'device': 'HT01', 'day': '2026-11-02', 'exams': 40,
                'hours': 7.5},
            {'device': 'HT02', 'day': '2026-11-02', 'exams': 12,
                'hours': '3.25'},
            ]

        def post(body, key=None, raw=None, query=''):
            headers = {'Content-Type': 'application/json'}
            if key:
                headers['Authorization'] = f'Bearer {key}'
            return client.post(
                url + query, headers=headers,
                data=raw if raw is not None else json.dumps(body))

        for key in [None, 'wrong', self.rest_key]:
            with self.subTest(key=key):
                self.assertEqual(post(rows, key).status_code, 401)

        bad = rows + [{'device': 'HT03', 'day': '2026-11-02',
                'exams': -1, 'hours': 1}]
        response = post(bad, self.key)
        self.assertEqual(response.status_code, 400)
        message = response.get_json()['message']
        self.assertTrue(message.startswith('Row 3: the number of exam'),
            message)
        response = post(None, self.key, raw=b'{not json')
        self.assertEqual(response.status_code, 400)
        self.assertIn('JSON', response.get_json()['message'])
        response = post(rows, self.key, query='?endpoint=Nope')
        self.assertEqual(response.status_code, 400)
        self.assertFalse(
            {d for d, _ in self.usages(self.http_id)} & {'HT01', 'HT02'})

        response = post(rows, self.key, query='?endpoint=PACS%20HTTP')
        self.assertEqual(response.status_code, 200, response.get_data())
        self.assertEqual(response.get_json(), {
                'received': 2, 'created': 2, 'replaced': 0, 'unchanged': 0})
        rows[1]['exams'] = 13
        response = post(rows, self.key)
        self.assertEqual(response.get_json(), {
                'received': 2, 'created': 0, 'replaced': 1, 'unchanged': 1})
        usages = self.usages(self.http_id)
        self.assertEqual(usages[('HT02', dt.date(2026, 11, 2))], (
                13, Decimal('3.25'), 'http'))
