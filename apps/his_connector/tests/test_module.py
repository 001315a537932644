# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
import os
from itertools import count
from unittest.mock import patch

from trytond.i18n import gettext
from trytond.model.exceptions import (
    RequiredValidationError, SQLConstraintError)
from trytond.modules.company.tests import (
    CompanyTestMixin, create_company, set_company)
from trytond.pool import Pool
from trytond.tests.test_tryton import (
    DB_NAME, ModuleTestCase, TestCase, activate_module, drop_db,
    with_transaction)
from trytond.transaction import Transaction

from ..endpoint import (
    KIND_PURPOSE, valid_device_path, valid_directory_path, valid_http_url,
    valid_mllp_url)
from ..exceptions import CredentialError, EndpointValidationError

MODULE = 'his_connector'

GOOD_URLS = {
    'gnuhealth': 'http://127.0.0.1:8000/',
    'fhir': 'https://fhir.example.org/r4',
    'hl7_mllp': 'mllp://10.0.0.5:2575',
    'sms_modem': '/dev/ttyUSB0',
    'pacs_http': 'https://pacs.example.org:8443/api/studies?site=1',
    'pacs_csv': '/var/spool/pacs',
    }
BAD_URLS = {
    'gnuhealth': [
        '127.0.0.1:8000', 'ftp://his.example.org/', 'http://',
        'http://his.example.org:99999/', 'http://his.example.org:0/',
        'http://his example.org/', 'mllp://10.0.0.5:2575', '/dev/ttyUSB0'],
    'fhir': ['fhir.example.org', 'https:///r4', 'https://h/r4#top'],
    'hl7_mllp': [
        '10.0.0.5:2575', 'mllp://10.0.0.5', 'mllp://10.0.0.5:port',
        'mllp://:2575', 'mllp://10.0.0.5:2575/path',
        'mllp://10.0.0.5:2575?x=1', 'http://10.0.0.5:2575'],
    'sms_modem': [
        'ttyUSB0', '/dev/', '/tmp/ttyUSB0', '/dev/../etc/passwd',
        '/dev//ttyUSB0', '/dev/pts/', '/dev/tty USB0', 'COM3',
        'http://modem/'],
    'pacs_http': ['pacs.example.org/api', 'file:///srv/pacs'],
    'pacs_csv': [
        'var/spool/pacs', '/', '/srv/../etc', '/srv/./pacs', '/srv//pacs',
        'https://pacs.example.org/'],
    }


_names = count(1)


class HisConnectorTestCase(CompanyTestMixin, ModuleTestCase):
    "Test HIS Connector module"
    module = MODULE

    @staticmethod
    def endpoint_values(**values):
        # Each test runs in one transaction which keeps the rows of the
        # refused creations, so the default name must be unique
        return {
            'name': f"GNU Health {next(_names)}",
            'purpose': 'his',
            'kind': 'gnuhealth',
            'url': 'http://127.0.0.1:8000/',
            'database': 'health',
            'username': 'hrp',
            'credential_env': 'HRP_CRED_HIS_PASSWORD',
            } | values

    def test_url_forms(self):
        "Test the URL form checks"
        for check, value, expected in [
                (valid_http_url, 'https://his.example.org', True),
                (valid_http_url, 'http://[::1]:8000/health?a=b', True),
                (valid_http_url, 'http://h:65536/', False),
                (valid_http_url, 'http://h/\tx', False),
                (valid_mllp_url, 'mllp://his.example.org:2575/', True),
                (valid_mllp_url, 'mllp://[::1]:2575', True),
                (valid_mllp_url, 'mllp://his.example.org:0', False),
                (valid_device_path, '/dev/pts/7', True),
                (valid_device_path, '/dev/ttyS0', True),
                (valid_device_path,
                    '/dev/serial/by-path/pci-0000:00:14.0-usb-0:2:1.0-port0',
                    True),
                (valid_device_path, '/dev/pts/7/', False),
                (valid_device_path, '/dev/./ttyS0', False),
                (valid_directory_path, '/srv/pacs/', True),
                (valid_directory_path, '/srv/PACS import', True),
                (valid_directory_path, '', False),
                ]:
            with self.subTest(check=check.__name__, value=value):
                self.assertEqual(check(value), expected)

    @with_transaction()
    def test_endpoint_defaults(self):
        "Test endpoint defaults"
        pool = Pool()
        Endpoint = pool.get('his.endpoint')

        company = create_company()
        with set_company(company):
            defaults = Endpoint.default_get([
                    'active', 'company', 'connect_timeout', 'read_timeout',
                    'max_attempts', 'credential_env', 'database'],
                with_rec_name=False)

        self.assertEqual(defaults, {
                'active': True,
                'company': company.id,
                'connect_timeout': 5,
                'read_timeout': 30,
                'max_attempts': 8,
                })

    @with_transaction()
    def test_endpoint_each_kind(self):
        "Test an endpoint of each kind with a valid URL"
        pool = Pool()
        Endpoint = pool.get('his.endpoint')

        company = create_company()
        with set_company(company):
            for kind, url in GOOD_URLS.items():
                with self.subTest(kind=kind):
                    values = self.endpoint_values(
                        name=kind, kind=kind, purpose=KIND_PURPOSE[kind],
                        url=url)
                    if kind != 'gnuhealth':
                        del values['database']
                    endpoint, = Endpoint.create([values])
                    self.assertEqual(endpoint.url, url)

    @with_transaction()
    def test_on_change_kind(self):
        "Test changing the kind sets the purpose and clears the database"
        pool = Pool()
        Endpoint = pool.get('his.endpoint')

        endpoint = Endpoint(purpose='his', kind='sms_modem', database='x')
        endpoint.on_change_kind()

        self.assertEqual(endpoint.purpose, 'sms')
        self.assertIsNone(endpoint.database)

    @with_transaction()
    def test_url_invalid(self):
        "Test bad URLs are refused per kind"
        pool = Pool()
        Endpoint = pool.get('his.endpoint')

        company = create_company()
        with set_company(company):
            for kind, urls in BAD_URLS.items():
                for url in urls:
                    with self.subTest(kind=kind, url=url):
                        values = self.endpoint_values(
                            kind=kind, purpose=KIND_PURPOSE[kind], url=url)
                        if kind != 'gnuhealth':
                            del values['database']
                        with self.assertRaisesRegex(
                                EndpointValidationError,
                                'is not valid'):
                            Endpoint.create([values])

    @with_transaction()
    def test_url_credential(self):
        "Test a URL with a password is refused without showing it"
        pool = Pool()
        Endpoint = pool.get('his.endpoint')

        company = create_company()
        with set_company(company):
            for kind, url in [
                    ('gnuhealth', 'http://admin:s3cret@his.example.org/'),
                    ('fhir', 'https://token@fhir.example.org/'),
                    ('hl7_mllp', 'mllp://u:s3cret@10.0.0.5:2575'),
                    ]:
                with self.subTest(kind=kind):
                    values = self.endpoint_values(
                        name=f"HIS {kind}", kind=kind, url=url,
                        database='health' if kind == 'gnuhealth' else None)
                    with self.assertRaises(EndpointValidationError) as cm:
                        Endpoint.create([values])
                    self.assertEqual(cm.exception.message, gettext(
                            'his_connector.msg_endpoint_url_credential',
                            endpoint=f"HIS {kind}"))
                    self.assertNotIn('s3cret', cm.exception.message)

    @with_transaction()
    def test_url_invalid_on_write(self):
        "Test a valid endpoint cannot get a bad URL or kind"
        pool = Pool()
        Endpoint = pool.get('his.endpoint')

        company = create_company()
        with set_company(company):
            endpoint, = Endpoint.create([self.endpoint_values()])

            with self.assertRaises(EndpointValidationError):
                Endpoint.write([endpoint], {'url': '/dev/ttyUSB0'})
            with self.assertRaises(EndpointValidationError):
                Endpoint.write([endpoint], {
                        'kind': 'hl7_mllp', 'database': None})

    @with_transaction()
    def test_kind_purpose(self):
        "Test the kind must fit the purpose"
        pool = Pool()
        Endpoint = pool.get('his.endpoint')

        company = create_company()
        with set_company(company):
            with self.assertRaisesRegex(
                    EndpointValidationError, 'cannot serve the purpose'):
                Endpoint.create([self.endpoint_values(purpose='sms')])

    @with_transaction()
    def test_database(self):
        "Test the database is required for and only for GNU Health"
        pool = Pool()
        Endpoint = pool.get('his.endpoint')

        company = create_company()
        with set_company(company):
            with self.assertRaises(RequiredValidationError):
                Endpoint.create([self.endpoint_values(database=None)])
            with self.assertRaisesRegex(
                    EndpointValidationError, 'cannot have a database'):
                Endpoint.create([self.endpoint_values(
                            kind='fhir', url='https://fhir.example.org/')])
            with self.assertRaisesRegex(
                    EndpointValidationError, 'database name'):
                Endpoint.create([self.endpoint_values(
                            database='health; drop')])

    @with_transaction()
    def test_credential_env_invalid(self):
        "Test the credential environment variable must be a valid name"
        pool = Pool()
        Endpoint = pool.get('his.endpoint')

        company = create_company()
        with set_company(company):
            for name in ['1PASSWORD', 'HIS-PASSWORD', 'HIS PASSWORD',
                    'HIS$PASS', 'mot_de_passe_é', 's3cret!']:
                with self.subTest(name=name):
                    with self.assertRaisesRegex(
                            EndpointValidationError,
                            'not a valid environment variable name'):
                        Endpoint.create([self.endpoint_values(
                                    credential_env=name)])
            endpoint, = Endpoint.create([self.endpoint_values(
                        credential_env='HRP_CRED_his_token2')])

    @with_transaction()
    def test_credential_env_prefix(self):
        "Test an endpoint may only read the HRP_CRED_ variables"
        pool = Pool()
        Endpoint = pool.get('his.endpoint')

        company = create_company()
        with set_company(company):
            for name in ['PGPASSWORD', 'TRYTOND_DATABASE__URI', 'HOME',
                    'HRP_CRED_', 'hrp_cred_his', 'HRP_CREDHIS', 'X_HRP_CRED_A',
                    '_hrp_his_token2']:
                with self.subTest(name=name):
                    with self.assertRaises(EndpointValidationError) as cm:
                        Endpoint.create([self.endpoint_values(
                                    name=f"HIS {name}", credential_env=name)])
                    self.assertEqual(cm.exception.message, gettext(
                            'his_connector.msg_endpoint_credential_env_prefix',
                            endpoint=f"HIS {name}", variable=name,
                            prefix='HRP_CRED_'))
            endpoint, = Endpoint.create([self.endpoint_values()])
            with self.assertRaises(EndpointValidationError):
                Endpoint.write([endpoint], {'credential_env': 'PGPASSWORD'})

            # A name stored before the rule (or by SQL) is not read either
            table = Endpoint.__table__()
            cursor = Transaction().connection.cursor()
            cursor.execute(*table.update(
                    [table.credential_env], ['PGPASSWORD'],
                    where=table.id == endpoint.id))
            Transaction().cache.clear()
            endpoint = Endpoint(endpoint.id)
            with patch.dict(os.environ, {'PGPASSWORD': 's3cret'}):
                with self.assertRaises(CredentialError) as cm:
                    endpoint.get_credential()
            self.assertNotIn('s3cret', cm.exception.message)

    @with_transaction()
    def test_get_credential(self):
        "Test the credential is read from the environment"
        pool = Pool()
        Endpoint = pool.get('his.endpoint')

        company = create_company()
        with set_company(company):
            endpoint, = Endpoint.create([self.endpoint_values(
                        name="GNU Health",
                        credential_env='HRP_CRED_TEST_HIS')])
            modem, = Endpoint.create([{
                        'name': "Modem",
                        'purpose': 'sms',
                        'kind': 'sms_modem',
                        'url': '/dev/pts/3',
                        }])

            with patch.dict(os.environ, {'HRP_CRED_TEST_HIS': 's3cret'}):
                self.assertEqual(endpoint.get_credential(), 's3cret')
            self.assertIsNone(modem.get_credential())

            with patch.dict(os.environ):
                os.environ.pop('HRP_CRED_TEST_HIS', None)
                with self.assertRaises(CredentialError) as cm:
                    endpoint.get_credential()
                self.assertEqual(cm.exception.message, gettext(
                        'his_connector.msg_endpoint_credential_missing',
                        endpoint="GNU Health",
                        variable='HRP_CRED_TEST_HIS'))
            with patch.dict(os.environ, {'HRP_CRED_TEST_HIS': ''}):
                with self.assertRaises(CredentialError):
                    endpoint.get_credential()

    @with_transaction()
    def test_timeouts_positive(self):
        "Test timeouts must be positive"
        pool = Pool()
        Endpoint = pool.get('his.endpoint')

        company = create_company()
        with set_company(company):
            for field in ['connect_timeout', 'read_timeout']:
                for value in [0, -1.5, float('inf')]:
                    with self.subTest(field=field, value=value):
                        with self.assertRaisesRegex(
                                EndpointValidationError,
                                'must be a positive number of seconds'):
                            Endpoint.create([self.endpoint_values(
                                        **{field: value})])
            endpoint, = Endpoint.create([self.endpoint_values()])
            with self.assertRaisesRegex(
                    EndpointValidationError, 'Read Timeout'):
                Endpoint.write([endpoint], {'read_timeout': 0})

    @with_transaction()
    def test_max_attempts(self):
        "Test at least one attempt"
        pool = Pool()
        Endpoint = pool.get('his.endpoint')

        company = create_company()
        with set_company(company):
            for value in [0, -3]:
                with self.subTest(value=value):
                    with self.assertRaisesRegex(
                            EndpointValidationError, 'at least 1'):
                        Endpoint.create([self.endpoint_values(
                                    max_attempts=value)])
            endpoint, = Endpoint.create([self.endpoint_values(
                        max_attempts=1)])

    @with_transaction()
    def test_name_unique_per_company(self):
        "Test the name is unique per company"
        pool = Pool()
        Endpoint = pool.get('his.endpoint')

        company = create_company()
        other_company = create_company(name="Other Hospital")
        with set_company(company):
            Endpoint.create([self.endpoint_values(name="HIS")])
        with Transaction().set_context(
                company=other_company.id,
                companies=[company.id, other_company.id]):
            endpoint, = Endpoint.create([self.endpoint_values(name="HIS")])
            self.assertEqual(endpoint.company, other_company)
        # last: on PostgreSQL the failed insert aborts the transaction
        with set_company(company):
            with self.assertRaisesRegex(
                    SQLConstraintError, 'must be unique per company'):
                Endpoint.create([self.endpoint_values(name="HIS")])

    def test_refused_endpoint_not_saved(self):
        "Test a refused endpoint leaves nothing in the database"
        with Transaction().start(DB_NAME, 1):
            company = create_company(name="Nothing Saved Hospital")
            company_id = company.id
        context = {'company': company_id, 'companies': [company_id]}
        bad_values = [
            self.endpoint_values(url='his.example.org'),
            self.endpoint_values(credential_env='HIS-PASSWORD'),
            self.endpoint_values(connect_timeout=0),
            self.endpoint_values(max_attempts=0),
            ]
        for values in bad_values:
            with self.subTest(values=values):
                # Like the RPC dispatcher: the transaction of a refused
                # call is rolled back
                with self.assertRaises(EndpointValidationError):
                    with Transaction().start(DB_NAME, 1, context=context):
                        Pool().get('his.endpoint').create([
                                {'company': company_id, **values}])
                with Transaction().start(DB_NAME, 1, context=context):
                    self.assertEqual(
                        Pool().get('his.endpoint').search(
                            [('company', '=', company_id)]),
                        [])

    @with_transaction()
    def test_access(self):
        "Test only interface administrators access endpoints"
        pool = Pool()
        ModelAccess = pool.get('ir.model.access')
        ModelData = pool.get('ir.model.data')
        User = pool.get('res.user')
        Group = pool.get('res.group')

        group = Group(ModelData.get_id(MODULE, 'group_interface_admin'))
        admin = User(ModelData.get_id('res', 'user_admin'))
        self.assertIn(group, admin.groups)

        user, = User.create([{'name': "Nurse", 'login': 'nurse'}])
        with Transaction().set_user(user.id):
            access = ModelAccess.get_access(['his.endpoint'])['his.endpoint']
            self.assertFalse(any(access.values()), access)
        with Transaction().set_user(admin.id):
            access = ModelAccess.get_access(['his.endpoint'])['his.endpoint']
            self.assertTrue(all(access.values()), access)


class HisConnectorZhCNTestCase(TestCase):
    "Test HIS Connector module in Simplified Chinese"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        drop_db()
        activate_module([MODULE], lang='zh_CN')

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        drop_db()

    @with_transaction(context={'language': 'zh_CN'})
    def test_menu(self):
        "Test the menus read in Chinese"
        pool = Pool()
        Menu = pool.get('ir.ui.menu')
        ModelData = pool.get('ir.model.data')

        for xml_id, name in [
                ('menu_interfaces', "接口"),
                ('menu_endpoint_form', "端点"),
                ]:
            with self.subTest(menu=xml_id):
                menu = Menu(ModelData.get_id(MODULE, xml_id))
                self.assertEqual(menu.name, name)

    @with_transaction(context={'language': 'zh_CN'})
    def test_error(self):
        "Test a refused endpoint gets a Chinese message"
        pool = Pool()
        Endpoint = pool.get('his.endpoint')

        company = create_company()
        with set_company(company), \
                Transaction().set_context(language='zh_CN'):
            with self.assertRaises(EndpointValidationError) as cm:
                Endpoint.create([HisConnectorTestCase.endpoint_values(
                            kind='hl7_mllp', url='10.0.0.5:2575',
                            database=None)])
        self.assertIn("10.0.0.5:2575", cm.exception.message)
        self.assertIn("mllp://", cm.exception.message)
        self.assertIn("无效", cm.exception.message)

    @with_transaction(context={'language': 'zh_CN'})
    def test_field_strings(self):
        "Test the model and field names read in Chinese"
        pool = Pool()
        Endpoint = pool.get('his.endpoint')
        IrModel = pool.get('ir.model')

        self.assertEqual(IrModel.get_name('his.endpoint'), "接口端点")
        fields = Endpoint.fields_get(['url', 'kind'])
        self.assertEqual(fields['url']['string'], "地址")
        self.assertIn(
            ('gnuhealth', "GNU Health（JSON-RPC 接口）"),
            fields['kind']['selection'])


del ModuleTestCase
