# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""The HIS charge catalogue (CSV and HIS imports, deactivation, sync
records) and the material ↔ charge item mapping (one active mapping per
material, unit and price warnings, charge_item_for)."""
import dataclasses
import socket
import unittest
from decimal import Decimal

from trytond.exceptions import UserWarning
from trytond.i18n import gettext
from trytond.model.exceptions import SQLConstraintError
from trytond.modules.company.tests import create_company, set_company
from trytond.pool import Pool
from trytond.tests.test_tryton import (
    DB_NAME, activate_module, drop_db, with_transaction)
from trytond.transaction import Transaction, TransactionError

from ..chargeitem import parse_charge_items_csv
from ..exceptions import (
    CatalogueError, CatalogueImportError, ProductMappingValidationError,
    UnmappedMaterialError)
from ..his import ChargeItem as Item

CSV = (
    "code,name,unit,price,insurance_code\n"
    "C31010001,冠状动脉药物洗脱支架,个,6800.00,C03130100100001\n"
    "C14010003,一次性使用无菌注射器,支,0.85,\n"
    "\n"
    "C99990001,换药,次,,\n")
EXPECTED = [
    Item('C31010001', '冠状动脉药物洗脱支架', '个', Decimal('6800.00'),
        'C03130100100001'),
    Item('C14010003', '一次性使用无菌注射器', '支', Decimal('0.85'), None),
    Item('C99990001', '换药', '次', None, None),
    ]


def create_his(company, name="HIS", **values):
    Endpoint = Pool().get('his.endpoint')
    endpoint, = Endpoint.create([{
                'name': name, 'company': company.id, 'purpose': 'his',
                'kind': 'fhir', 'url': 'https://his.example.org/fhir',
                **values}])
    return endpoint


def create_material(name, unit, list_price=None):
    "Create a material counted in the unit of symbol unit"
    pool = Pool()
    Template = pool.get('product.template')
    Uom = pool.get('product.uom')
    unit, = Uom.search([('symbol', '=', unit)])
    template, = Template.create([{
                'name': name, 'type': 'goods', 'default_uom': unit.id,
                'list_price': list_price,
                'products': [('create', [{}])],
                }])
    product, = template.products
    return product


def call(func, company_id=None):
    """Run func in a transaction of the administrator like the dispatcher
    runs an RPC call: restarted with the locks it asks for, committed when
    it succeeds, rolled back when it raises. Return its result."""
    context = {}
    if company_id:
        context = {'company': company_id, 'companies': [company_id]}
    extras = {}
    while True:
        with Transaction().start(
                DB_NAME, 1, context=context, **extras) as transaction:
            try:
                return func()
            except TransactionError as exception:
                transaction.rollback()
                exception.fix(extras)


class ChargeItemTestCase(unittest.TestCase):
    "Test the HIS charge catalogue and the mappings"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        drop_db()
        activate_module(['his_connector'])

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        drop_db()

    def test_parse_encodings(self):
        "Test UTF-8 with and without BOM and GB18030 read the same"
        for encoding in ['utf-8', 'utf-8-sig', 'gb18030']:
            with self.subTest(encoding=encoding):
                self.assertEqual(
                    parse_charge_items_csv(CSV.encode(encoding)), EXPECTED)
        # Chinese column names, other order, Windows line ends
        chinese = (
            "医保编码,编码,名称,单位,单价\r\n"
            ",C14010003,一次性使用无菌注射器,支,0.85\r\n")
        self.assertEqual(
            parse_charge_items_csv(chinese.encode('gb18030')), [EXPECTED[1]])

    @with_transaction()
    def test_parse_errors(self):
        "Test bad lines are all reported with their line numbers"
        data = (
            "code,name,unit,price,insurance_code\n"
            "C1,Good,个,1.00,\n"
            ",No code,个,1,\n"
            "C1,Again,个,1,\n"
            "C 2,Space,个,1,\n"
            "C3,,个,1,\n"
            "C4,Bad price,个,abc,\n"
            "C5,Negative,个,-1,\n"
            "C6,Five decimals,个,1.00001,\n"
            "C7,Good too,个,2,\n").encode('utf-8')
        with self.assertRaises(CatalogueImportError) as cm:
            parse_charge_items_csv(data)
        lines = cm.exception.message.splitlines()
        self.assertEqual([line.split(':')[0] for line in lines[:-1]], [
                'Line 3', 'Line 4', 'Line 5', 'Line 6', 'Line 7', 'Line 8',
                'Line 9'])
        self.assertEqual(lines[1], gettext(
                'his_connector.msg_csv_line', line=4,
                error=gettext(
                    'his_connector.msg_csv_code_duplicate', code='C1',
                    first=2)))
        self.assertIn('"abc"', lines[4])
        self.assertEqual(lines[-1], gettext(
                'his_connector.msg_csv_nothing_imported'))

    @with_transaction()
    def test_parse_bad_files(self):
        "Test files that cannot be read"
        for data, message in [
                (b'', 'msg_csv_empty'),
                (b'\n\n', 'msg_csv_empty'),
                (b'code,name\nC1,\xff\xff\xff\n', 'msg_csv_encoding'),
                ]:
            with self.subTest(data=data):
                with self.assertRaises(CatalogueImportError) as cm:
                    parse_charge_items_csv(data)
                self.assertEqual(
                    cm.exception.message,
                    gettext(f'his_connector.{message}'))
        with self.assertRaises(CatalogueImportError) as cm:
            parse_charge_items_csv(b'code,unit,price\nC1,x,1\n')
        self.assertIn('name', cm.exception.message)
        self.assertNotIn('code,', cm.exception.message.split(':')[0])

    @with_transaction()
    def test_import_and_refresh(self):
        "Test a full import creates, updates and deactivates, never deletes"
        pool = Pool()
        ChargeItem = pool.get('his.charge.item')

        company = create_company()
        with set_company(company):
            his = create_his(company)
            other = create_his(company, name="Other HIS")
            ChargeItem.import_items(other, [EXPECTED[0]], 'his')

            sync = ChargeItem.import_items(his, EXPECTED, 'his')
            self.assertEqual(
                (sync.created, sync.updated, sync.unchanged,
                    sync.deactivated), (3, 0, 0, 0))
            self.assertEqual(sync.user.id, Transaction().user)
            items = ChargeItem.search([('endpoint', '=', his.id)])
            self.assertEqual([i.code for i in items], [
                    'C14010003', 'C31010001', 'C99990001'])
            self.assertEqual(
                {i.code: i.price for i in items}['C31010001'],
                Decimal('6800.00'))
            self.assertTrue(all(i.last_sync == sync for i in items))

            # The HIS changes a price and withdraws the dressing
            changed = [
                dataclasses.replace(EXPECTED[0], price=Decimal('6500.00')),
                EXPECTED[1]]
            sync2 = ChargeItem.import_items(his, changed, 'his')
            self.assertEqual(
                (sync2.created, sync2.updated, sync2.unchanged,
                    sync2.deactivated), (0, 1, 1, 1))
            with Transaction().set_context(active_test=False):
                dressing, = ChargeItem.search([('code', '=', 'C99990001')])
            self.assertFalse(dressing.active)
            self.assertEqual(dressing.last_sync, sync)
            stent, = ChargeItem.search([
                    ('endpoint', '=', his.id), ('code', '=', 'C31010001')])
            self.assertEqual(stent.price, Decimal('6500.00'))
            self.assertEqual(stent.rec_name, '[C31010001] 冠状动脉药物洗脱支架')
            # The other HIS's catalogue is not touched
            self.assertEqual(ChargeItem.search([
                        ('endpoint', '=', other.id)], count=True), 1)
            # Who changed what is in the model log (stored at commit)
            logs = [l for l in Transaction().log_records
                if l.resource == stent and l.event == 'write']
            self.assertEqual(len(logs), 1)
            self.assertIn('price', logs[0].target)
            self.assertEqual(logs[0].user.id, Transaction().user)

            # Listed again: active again; an item listed as inactive is
            # deactivated
            sync3 = ChargeItem.import_items(his, [
                    changed[0], EXPECTED[2],
                    dataclasses.replace(EXPECTED[1], active=False)], 'his')
            self.assertEqual(
                (sync3.updated, sync3.deactivated, sync3.unchanged),
                (1, 1, 1))
            dressing = ChargeItem(dressing.id)
            self.assertTrue(dressing.active)

            # A partial file deactivates nothing
            sync4 = ChargeItem.import_items(
                his, [EXPECTED[0]], 'csv', full=False, file_name='a.csv')
            self.assertEqual(sync4.deactivated, 0)
            self.assertEqual(sync4.updated, 1)
            self.assertEqual(ChargeItem.search([
                        ('endpoint', '=', his.id)], count=True), 2)

    @with_transaction()
    def test_import_refused(self):
        "Test duplicate codes and a non-HIS endpoint are refused"
        pool = Pool()
        ChargeItem = pool.get('his.charge.item')
        Endpoint = pool.get('his.endpoint')

        company = create_company()
        with set_company(company):
            his = create_his(company)
            with self.assertRaises(CatalogueError) as cm:
                ChargeItem.import_items(his, [EXPECTED[0], EXPECTED[0]], 'his')
            self.assertIn('C31010001', cm.exception.message)
            self.assertEqual(ChargeItem.search([], count=True), 0)

            pacs, = Endpoint.create([{
                        'name': "PACS", 'purpose': 'pacs',
                        'kind': 'pacs_csv', 'url': '/srv/pacs'}])
            with self.assertRaises(CatalogueError):
                ChargeItem.import_items(pacs, EXPECTED, 'csv')

    @with_transaction()
    def test_code_unique(self):
        "Test a code is unique per HIS"
        pool = Pool()
        ChargeItem = pool.get('his.charge.item')

        company = create_company()
        with set_company(company):
            his = create_his(company)
            values = {
                'company': company.id, 'endpoint': his.id, 'code': 'C1',
                'name': "One"}
            ChargeItem.create([values])
            with self.assertRaises(SQLConstraintError):
                ChargeItem.create([values])

    def test_wizard_csv(self):
        "Test the import wizard: a good file, then a bad one changes nothing"
        def setup():
            company = create_company(name="Wizard Hospital")
            with set_company(company):
                return company.id, create_his(company, name="Wizard HIS").id
        company_id, his_id = call(setup)
        good = CSV.encode('gb18030')
        bad = (CSV + "C1,Bad,个,x,\n").replace(
            '6800.00', '7000.00').encode('utf-8')

        def run(data):
            Wizard = Pool().get('his.charge.item.import', type='wizard')
            session_id, _, _ = Wizard.create()
            wizard = Wizard(session_id)
            wizard.start.endpoint = his_id
            wizard.start.source = 'csv'
            wizard.start.file = data
            wizard.start.file_name = 'catalogue.csv'
            wizard.start.full = True
            return wizard.do_import_(
                {'views': [[1, 'tree'], [2, 'form']]})

        action, data = call(lambda: run(good), company_id)
        sync_id, = data['res_id']
        self.assertEqual(action['views'], [[2, 'form'], [1, 'tree']])
        with self.assertRaises(CatalogueImportError) as cm:
            call(lambda: run(bad), company_id)
        self.assertIn('Line 6', cm.exception.message)

        def check():
            pool = Pool()
            ChargeItem = pool.get('his.charge.item')
            Sync = pool.get('his.charge.item.sync')
            items = ChargeItem.search([('endpoint', '=', his_id)])
            self.assertEqual(len(items), 3)
            self.assertEqual(
                {i.code: i.price for i in items}['C31010001'],
                Decimal('6800.00'))
            sync, = Sync.search([('endpoint', '=', his_id)])
            self.assertEqual(sync.id, sync_id)
            self.assertEqual(
                (sync.source, sync.file_name, sync.created),
                ('csv', 'catalogue.csv', 3))
        call(check, company_id)

    @with_transaction()
    def test_refresh_unreachable(self):
        "Test an HIS that cannot be reached: translated error, nothing kept"
        pool = Pool()
        ChargeItem = pool.get('his.charge.item')
        Sync = pool.get('his.charge.item.sync')

        # A port nobody listens on
        with socket.socket() as sock:
            sock.bind(('127.0.0.1', 0))
            port = sock.getsockname()[1]
        company = create_company()
        with set_company(company):
            his = create_his(
                company, url=f'http://127.0.0.1:{port}/fhir',
                connect_timeout=1)
            with self.assertRaises(CatalogueError) as cm:
                ChargeItem.refresh_endpoint(his)
            self.assertTrue(cm.exception.message.startswith(
                    'The charge catalogue could not be read from "HIS"'))
            self.assertEqual(Sync.search([], count=True), 0)

            # The scheduled job logs it and goes on
            with self.assertLogs('his_connector.chargeitem', 'WARNING'):
                ChargeItem.refresh_catalogues()
            self.assertEqual(Sync.search([], count=True), 0)


class ProductMappingTestCase(unittest.TestCase):
    "Test the material ↔ charge item mappings"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        drop_db()
        activate_module(['his_connector'])

        def setup():
            pool = Pool()
            ChargeItem = pool.get('his.charge.item')
            Uom = pool.get('product.uom')
            ModelData = pool.get('ir.model.data')
            units = ModelData.get_id('product', 'uom_cat_unit')
            Uom.create([{
                        'name': name, 'symbol': name, 'category': units,
                        'factor': 1, 'rounding': 1, 'digits': 0}
                    for name in ['个', '支', '盒', '次']])
            company = create_company(name="Mapping Hospital")
            with set_company(company):
                his = create_his(company)
                ChargeItem.import_items(his, [
                        *EXPECTED,
                        Item('C14010010', '一次性使用无菌注射器（盒）', '盒',
                            Decimal('8.50'), None),
                        Item('C99990009', '停用项目', '个', Decimal('1'),
                            None, active=False),
                        ], 'his')
                with Transaction().set_context(active_test=False):
                    items = {i.code: i.id for i in ChargeItem.search([])}
            return company.id, items
        cls.company_id, cls.items = call(setup)

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        drop_db()

    def call(self, func):
        return call(func, self.company_id)

    def mapping(self, product, code, **values):
        return {
            'company': self.company_id, 'product': product.id,
            'charge_item': self.items[code], **values}

    def create_mapping(self, name, code, unit, list_price=None, **values):
        "Create a material and its mapping to code; return their ids"
        Mapping = Pool().get('his.product.mapping')
        product = create_material(name, unit, list_price)
        mapping, = Mapping.create([self.mapping(product, code, **values)])
        return product.id, mapping.id

    def test_one_active_mapping(self):
        "Test a material has one active mapping"
        stent_id, first_id = self.call(lambda: self.create_mapping(
                "支架 A", 'C31010001', '个', Decimal('6800')))

        def second(active=True):
            pool = Pool()
            Mapping = pool.get('his.product.mapping')
            stent = pool.get('product.product')(stent_id)
            return Mapping.create([self.mapping(
                        stent, 'C99990001', unit_factor=Decimal(1),
                        active=active)])[0].id

        with self.assertRaises(ProductMappingValidationError) as cm:
            self.call(second)
        self.assertEqual(cm.exception.message, self.call(
                lambda: gettext(
                    'his_connector.msg_product_mapping_one_active',
                    material="支架 A",
                    charge_item='[C31010001] 冠状动脉药物洗脱支架')))

        def replace():
            pool = Pool()
            Mapping = pool.get('his.product.mapping')
            stent = pool.get('product.product')(stent_id)
            self.assertEqual(
                Mapping.charge_item_for(stent).code, 'C31010001')
            # An inactive second mapping is allowed
            second(active=False)
            # Replace: deactivate the first, then map again
            Mapping.write([Mapping(first_id)], {'active': False})
            second()
            self.assertEqual(
                Mapping.charge_item_for(stent).code, 'C99990001')
        with self.assertRaises(UserWarning):
            # 次 is not 个
            self.call(replace)

        def replace_same_unit():
            pool = Pool()
            Mapping = pool.get('his.product.mapping')
            stent = pool.get('product.product')(stent_id)
            Mapping.write([Mapping(first_id)], {'active': False})
            # Its price differs: the user confirmed the warning
            with Transaction().set_context(_skip_warnings=True):
                Mapping.create([self.mapping(
                            stent, 'C99990009', unit_factor=Decimal(1))])
            # The first cannot come back while the new one is active
            with self.assertRaises(ProductMappingValidationError):
                Mapping.write([Mapping(first_id)], {'active': True})
        self.call(replace_same_unit)

    def test_unit_factor_positive(self):
        "Test the unit factor is positive"
        for factor in [Decimal(0), Decimal(-2)]:
            with self.subTest(factor=factor):
                with self.assertRaisesRegex(
                        ProductMappingValidationError, 'greater than 0'):
                    self.call(lambda: self.create_mapping(
                            f"Factor {factor}", 'C99990001', '次',
                            unit_factor=factor))

    def test_unit_warning(self):
        "Test a unit mismatch warns until the user confirms"
        # A box mapped to an item charged per piece, factor forgotten: the
        # material exists, the mapping is created (and refused) as in the desk
        product_id = self.call(
            lambda: create_material("注射器（盒）", '盒').id)

        def create():
            Mapping = Pool().get('his.product.mapping')
            Product = Pool().get('product.product')
            mapping, = Mapping.create(
                [self.mapping(Product(product_id), 'C14010003')])
            return mapping.id

        with self.assertRaises(UserWarning) as cm:
            self.call(create)
        self.assertEqual(cm.exception.message, self.call(
                lambda: gettext(
                    'his_connector.msg_product_mapping_unit_mismatch',
                    material="注射器（盒）", material_unit="盒",
                    charge_item='[C14010003] 一次性使用无菌注射器',
                    charge_unit='支')))

        def check_nothing_kept():
            Mapping = Pool().get('his.product.mapping')
            self.assertEqual(Mapping.search([
                        ('product.name', '=', "注射器（盒）")]), [])
            Warning = Pool().get('res.user.warning')
            Warning.create([{'user': 1, 'name': cm.exception.name}])
        self.call(check_nothing_kept)
        # Confirmed: saved
        self.assertTrue(self.call(create))

    def test_unit_factor_no_warning(self):
        "Test a unit factor and matching prices do not warn"
        def create():
            Mapping = Pool().get('his.product.mapping')
            # A box of 10 syringes billed per piece at 0.85
            _, mapping_id = self.create_mapping(
                "注射器 10 支装", 'C14010003', '盒', Decimal('8.50'),
                unit_factor=Decimal(10))
            mapping = Mapping(mapping_id)
            self.assertFalse(mapping.unit_mismatch())
            self.assertFalse(mapping.price_mismatch())
            self.assertEqual(
                (mapping.material_unit, mapping.charge_unit,
                    mapping.charge_price), ('盒', '支', Decimal('0.85')))
            # Same unit, same price
            self.create_mapping(
                "注射器", 'C14010003', '支', Decimal('0.85'))
        self.call(create)

    def test_price_warning(self):
        "Test a list price that differs from the HIS price warns"
        with self.assertRaises(UserWarning) as cm:
            self.call(lambda: self.create_mapping(
                    "冠脉支架 D", 'C31010001', '个', Decimal('7000')))
        self.assertEqual(cm.exception.message,
            'The list price 7000 of material "冠脉支架 D" differs from the '
            'HIS price 6800.00 × 1 of charge item '
            '"[C31010001] 冠状动脉药物洗脱支架".')
        # Without a price on either side there is nothing to compare
        self.call(lambda: self.create_mapping(
                "换药包", 'C99990001', '次', Decimal('12')))
        self.call(lambda: self.create_mapping(
                "冠脉支架 E", 'C31010001', '个'))

    def test_charge_item_for(self):
        "Test charge_item_for refuses unmapped and withdrawn materials"
        def check():
            pool = Pool()
            Mapping = pool.get('his.product.mapping')
            loose = create_material("未对照的物资", '个')
            with self.assertRaises(UnmappedMaterialError) as cm:
                Mapping.charge_item_for(loose)
            self.assertEqual(cm.exception.message, gettext(
                    'his_connector.msg_product_mapping_unmapped',
                    material="未对照的物资"))

            withdrawn_id, _ = self.create_mapping(
                "停用对照物资", 'C99990009', '个')
            withdrawn = pool.get('product.product')(withdrawn_id)
            with self.assertRaisesRegex(
                    UnmappedMaterialError, 'withdrawn by the HIS'):
                Mapping.charge_item_for(withdrawn)
            # Another company has no mapping
            with self.assertRaises(UnmappedMaterialError):
                Mapping.charge_item_for(
                    withdrawn, company=create_company(name="Other"))
            stent_id, _ = self.create_mapping(
                "支架 F", 'C31010001', '个', Decimal('6800'))
            stent = pool.get('product.product')(stent_id)
            mapping = Mapping.mapping_for(stent)
            self.assertEqual(mapping.charge_item.insurance_code,
                'C03130100100001')
        self.call(check)
