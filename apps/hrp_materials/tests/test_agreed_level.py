# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Agreed levels of a high-value store (约定库存水平): what they accept and
the quantity they suggest to the supplier."""
import unittest
from decimal import Decimal

from trytond.exceptions import UserError
from trytond.model.exceptions import SQLConstraintError
from trytond.modules.company.tests import create_company, set_company
from trytond.pool import Pool
from trytond.tests.test_tryton import (
    activate_module, drop_db, with_transaction)

from .test_consumption import (
    create_category, create_lots, create_product, receive)
from .tools import as_user, create_department, create_store, create_user


class AgreedLevelTestCase(unittest.TestCase):
    "Test the agreed levels of high-value stores"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        drop_db()
        activate_module(['hrp_materials'])

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        drop_db()

    def setup_theatre(self, company):
        pool = Pool()
        Location = pool.get('stock.location')
        Party = pool.get('party.party')
        theatre = create_department(company, 'SSS', "手术室")
        store = create_store("手术室高值库", theatre, store_type='high_value')
        warehouse, = Location.search([('type', '=', 'warehouse')])
        store.parent = warehouse
        store.save()
        # a sub-location of the store counts in its stock
        shelf, = Location.create([{
                    'name': "支架柜", 'type': 'storage', 'parent': store.id}])
        supplier, = Party.create([{'name': "华东医疗器械"}])
        implants = create_category("血管介入类")
        stent = create_product(
            "冠脉药物洗脱支架", implants, Decimal('6500'),
            implant=True, serial_tracked=True, lot_required=True)
        return store, shelf, supplier, stent

    @with_transaction()
    def test_suggested_quantity(self):
        """Nothing is suggested above the safety quantity; at or below it,
        the quantity that restores the maximum, sub-locations counted"""
        Level = Pool().get('hrp.agreed.level')
        company = create_company()
        with set_company(company):
            store, shelf, supplier, stent = self.setup_theatre(company)
            level, = Level.create([{
                        'store': store.id, 'supplier': supplier.id,
                        'product': stent.id, 'safety_quantity': 2,
                        'maximum_quantity': 6}])
            self.assertEqual(Level.suggested_quantities([level]),
                {level.id: 6})
            lots = create_lots(stent, *[
                    (f'SN{i:04d}', None) for i in range(3)])
            receive(company, store, stent, 1, lot=lots[0])
            receive(company, shelf, stent, 1, lot=lots[1])
            receive(company, shelf, stent, 1, lot=lots[2])
            self.assertEqual(Level.stock_quantities([level]),
                {level.id: 3})
            self.assertEqual(Level.suggested_quantities([level]),
                {level.id: 0})
            level.safety_quantity = 3
            level.save()
            self.assertEqual(Level.suggested_quantities([level]),
                {level.id: 3})

    @with_transaction()
    def test_bad_input(self):
        "Negative, inverted or duplicate levels are refused"
        Level = Pool().get('hrp.agreed.level')
        company = create_company()
        with set_company(company):
            store, _, supplier, stent = self.setup_theatre(company)
            values = {
                'store': store.id, 'supplier': supplier.id,
                'product': stent.id}
            Party = Pool().get('party.party')
            for safety, maximum in [(-1, 5), (5, 2), (0, 0)]:
                # A refused record stays in the transaction: one supplier
                # each
                other, = Party.create([{'name': f"{safety}/{maximum}"}])
                with self.assertRaisesRegex(UserError, "safety quantity"):
                    Level.create([dict(
                                values, supplier=other.id,
                                safety_quantity=safety,
                                maximum_quantity=maximum)])
            Level.create([dict(
                        values, safety_quantity=1, maximum_quantity=4)])
            with self.assertRaises(SQLConstraintError):
                Level.create([dict(
                            values, safety_quantity=2, maximum_quantity=5)])

    @with_transaction()
    def test_access(self):
        "The store keeper sets the levels; a nurse cannot see them"
        pool = Pool()
        Level = pool.get('hrp.agreed.level')
        company = create_company()
        with set_company(company):
            store, _, supplier, stent = self.setup_theatre(company)
            keeper = create_user(
                'keeper', 'hrp_materials.group_store_keeper', company)
            nurse = create_user(
                'nurse', 'hrp_materials.group_nurse', company)
            with as_user(keeper, company):
                level, = Level.create([{
                            'store': store.id, 'supplier': supplier.id,
                            'product': stent.id, 'safety_quantity': 1,
                            'maximum_quantity': 3}])
            with as_user(nurse, company):
                with self.assertRaises(UserError):
                    Level.read([level.id], ['safety_quantity'])
