# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
import datetime as dt
from decimal import Decimal

from trytond.exceptions import UserError
from trytond.model.exceptions import AccessError
from trytond.modules.company.tests import (
    CompanyTestMixin, create_company, set_company)
from trytond.pool import Pool
from trytond.tests.test_tryton import ModuleTestCase, with_transaction
from trytond.transaction import Transaction

from .tools import create_department, create_store, create_user

# GTIN-13 with a valid check digit, and the same with a wrong one
GTIN_OK = '6901234567892'
GTIN_BAD = '6901234567891'
INSURANCE_OK = 'C' + '03010100100000001234567890'


def create_material(name='医用棉签', gtin=GTIN_OK, cost=None, **values):
    pool = Pool()
    Template = pool.get('product.template')
    Uom = pool.get('product.uom')
    unit, = Uom.search([('name', '=', 'Unit')])
    template, = Template.create([{
                'name': name,
                'type': 'goods',
                'default_uom': unit.id,
                'products': [('create', [{
                                'identifiers': [('create', [{
                                                'type': 'ean',
                                                'code': gtin,
                                                }])] if gtin else [],
                                }])],
                **values,
                }])
    if cost is not None:
        product, = template.products
        product.cost_price = cost
        product.save()
    return template


class HrpMaterialsTestCase(CompanyTestMixin, ModuleTestCase):
    "Test HRP Materials module"
    module = 'hrp_materials'

    @with_transaction()
    def test_department_code_unique(self):
        "Department codes are unique in a company"
        company = create_company()
        with set_company(company):
            create_department(company, 'NK', "内科")
            with self.assertRaises(UserError):
                create_department(company, 'NK', "内科二")

    @with_transaction()
    def test_department_rules(self):
        "A nurse sees only her department and its store"
        pool = Pool()
        Department = pool.get('hrp.department')
        Location = pool.get('stock.location')
        company = create_company()
        with set_company(company):
            cardio = create_department(company, 'XNK', "心内科")
            ortho = create_department(company, 'GK', "骨科")
            cardio_store = create_store("心内科二级库", cardio)
            ortho_store = create_store("骨科二级库", ortho)
            nurse = create_user(
                'nurse', 'hrp_materials.group_nurse', company)
            keeper = create_user(
                'keeper', 'hrp_materials.group_store_keeper', company)
            Department.write([cardio], {'members': [('add', [nurse.id])]})

        with Transaction().set_user(nurse.id), \
                Transaction().set_context(company=company.id):
            with Transaction().set_context(_check_access=True):
                self.assertEqual(Department.search([]), [cardio])
                stores = Location.search([('hrp_store_type', '!=', None)])
                self.assertEqual(stores, [cardio_store])
                self.assertNotIn(ortho_store, Location.search([]))
                with self.assertRaises(AccessError):
                    Location.read([ortho_store.id], ['name'])

        with Transaction().set_user(keeper.id), \
                Transaction().set_context(company=company.id):
            with Transaction().set_context(_check_access=True):
                self.assertEqual(
                    set(Location.search([('hrp_store_type', '!=', None)])),
                    {cardio_store, ortho_store})

        # she sees the departments around hers, not their stores
        internal = create_department(company, 'NK', "内科")
        Department.write([cardio], {'parent': internal.id})
        ward = create_department(
            company, 'XNK1', "心内一病区", parent=cardio.id)
        with Transaction().set_user(nurse.id), \
                Transaction().set_context(
                    company=company.id, _check_access=True):
            self.assertEqual(
                Department.read([cardio.id], ['parent.rec_name'])[0][
                    'parent.']['rec_name'], "[NK] 内科")
            self.assertEqual(
                Department.search([], order=[('code', 'ASC')]),
                [internal, cardio, ward])
            self.assertEqual(
                Location.search([('hrp_store_type', '!=', None)]),
                [cardio_store])
        Department.delete([ward])
        Department.write([cardio], {'parent': None})

        # moving the nurse to another department changes what she sees
        Department.write([cardio], {'members': [('remove', [nurse.id])]})
        Department.write([ortho], {'head_nurse': nurse.id})
        with Transaction().set_user(nurse.id), \
                Transaction().set_context(
                    company=company.id, _check_access=True):
            self.assertEqual(Department.search([]), [ortho])
            self.assertEqual(
                Location.search([('hrp_store_type', '!=', None)]),
                [ortho_store])

    @with_transaction()
    def test_store_needs_department(self):
        "A department store needs a department, a central store none"
        company = create_company()
        with set_company(company):
            department = create_department(company, 'ICU', "重症医学科")
            with self.assertRaises(UserError):
                create_store("无主二级库", None)
            with self.assertRaises(UserError):
                create_store("中心库", department, store_type='central')

    @with_transaction()
    def test_gtin(self):
        "GTINs are check-digit validated, normalised to 14 digits, unique"
        pool = Pool()
        Product = pool.get('product.product')
        company = create_company()
        with set_company(company):
            template = create_material()
            product, = template.products
            self.assertEqual(product.gtin, '0' + GTIN_OK)
            self.assertEqual(Product.find_by_gtin(GTIN_OK), product)
            self.assertEqual(Product.find_by_gtin('0' + GTIN_OK), product)
            with self.assertRaises(UserError):
                create_material("错误条码", gtin=GTIN_BAD)
            with self.assertRaises(UserError):
                create_material("重复条码", gtin=GTIN_OK)
            with self.assertRaises(UserError):
                create_material("重复条码", gtin='0' + GTIN_OK)

    @with_transaction()
    def test_insurance_code(self):
        "The medical-insurance code is C and 26 digits"
        company = create_company()
        with set_company(company):
            create_material(
                gtin=None, insured=True, insurance_code=INSURANCE_OK)
            for code in ['C123', 'X' + INSURANCE_OK[1:], INSURANCE_OK + '0',
                    INSURANCE_OK[:-1] + 'A']:
                with self.subTest(code=code):
                    with self.assertRaises(UserError):
                        create_material(
                            gtin=None, insured=True, insurance_code=code)

    @with_transaction()
    def test_registration_expired(self):
        "An active material cannot carry an expired certificate"
        pool = Pool()
        Template = pool.get('product.template')
        today = pool.get('ir.date').today()
        company = create_company()
        with set_company(company):
            yesterday = today - dt.timedelta(days=1)
            with self.assertRaises(UserError):
                create_material(
                    gtin=None, registration_number='国械注准20193130001',
                    registration_expiry=yesterday)
            template = create_material(
                gtin=None, registration_number='国械注准20193130001',
                registration_expiry=today)
            with self.assertRaises(UserError):
                Template.write([template], {
                        'registration_expiry': yesterday})
            Template.write([template], {
                    'registration_expiry': yesterday, 'active': False})
            self.assertFalse(template.active)

    @with_transaction()
    def test_high_value(self):
        "Implants and materials costing at least the threshold are high-value"
        pool = Pool()
        Template = pool.get('product.template')
        Configuration = pool.get('hrp.configuration')
        company = create_company()
        with set_company(company):
            swab = create_material("棉签", gtin=None, cost=Decimal('0.5'))
            stent = create_material(
                "冠脉支架", gtin=None, implant=True, cost=Decimal('800'))
            stapler = create_material(
                "吻合器", gtin=None, cost=Decimal('2000'))
            self.assertEqual(
                [t.high_value for t in Template.browse(
                        [swab, stent, stapler])],
                [False, True, True])
            self.assertEqual(
                set(Template.search([('high_value', '=', True)])),
                {stent, stapler})
            self.assertEqual(
                Template.search([('high_value', '=', False)]), [swab])

            config = Configuration(1)
            config.high_value_threshold = Decimal('5000')
            config.save()
            self.assertEqual(
                Template.search([('high_value', '=', True)]), [stent])
            self.assertFalse(Template(stapler.id).high_value)
            config.high_value_threshold = Decimal('0')
            with self.assertRaises(UserError):
                config.save()

    @with_transaction()
    def test_supplier(self):
        "Supplier licences, SMS number and qualification"
        pool = Pool()
        Party = pool.get('party.party')
        Licence = pool.get('hrp.supplier.licence')
        today = pool.get('ir.date').today()
        company = create_company()
        with set_company(company):
            stent = create_material("冠脉支架", gtin=None, implant=True)
            supplier, = Party.create([{
                        'name': "国药器械", 'sms_number': '+8613800000000',
                        'hrp_authorised_materials': [('add', [stent.id])],
                        }])
            self.assertFalse(supplier.is_qualified_for(stent))
            trading, = Licence.create([{
                        'party': supplier.id, 'type': 'device_trading',
                        'number': '京药监械经营许20190001',
                        'expiry': today + dt.timedelta(days=10),
                        }])
            self.assertEqual(trading.state, 'expiring')
            self.assertEqual(Party(supplier.id).licence_state, 'expiring')
            self.assertTrue(Party(supplier.id).is_qualified_for(stent))
            self.assertFalse(Party(supplier.id).is_qualified_for(
                    stent, today + dt.timedelta(days=11)))
            self.assertEqual(
                Licence.search([('state', '=', 'expiring')]), [trading])
            self.assertEqual(
                Licence.search([('state', '!=', 'expiring')]), [])

            with self.assertRaises(UserError):
                Party.write([supplier], {'sms_number': '138-0000'})
            with self.assertRaises(UserError):
                Licence.create([{
                            'party': supplier.id, 'type': 'business',
                            'number': '91110000MA0000000X',
                            'issued': today,
                            'expiry': today - dt.timedelta(days=1),
                            }])

    @with_transaction()
    def test_department_document(self):
        "Only department users create department documents"
        pool = Pool()
        Document = pool.get('hrp.test.department_document')
        Department = pool.get('hrp.department')
        company = create_company()
        with set_company(company):
            cardio = create_department(company, 'XNK', "心内科")
            ortho = create_department(company, 'GK', "骨科")
            nurse = create_user(
                'nurse', 'hrp_materials.group_nurse', company)
            lonely = create_user(
                'lonely', 'hrp_materials.group_nurse', company)
            Department.write([cardio], {'members': [('add', [nurse.id])]})

        with Transaction().set_user(lonely.id), \
                Transaction().set_context(
                    company=company.id, _check_access=True):
            self.assertIsNone(Document.default_department())
            with self.assertRaises(AccessError):
                Document.create([{'department': cardio.id}])
        with Transaction().set_user(nurse.id), \
                Transaction().set_context(
                    company=company.id, _check_access=True):
            self.assertEqual(Document.default_department(), cardio.id)
            document, = Document.create([{'description': "申领"}])
            self.assertEqual(document.department, cardio)
            with self.assertRaises(AccessError):
                Document.create([{'department': ortho.id}])
        self.assertEqual(Document.search([], count=True), 1)


del ModuleTestCase
