# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Collecting a device's month: downtime from overlapping repairs, repair
and maintenance costs, consumables used for it, HIS revenue shared between
the devices of a charge item."""
import datetime as dt
import unittest
from decimal import Decimal

from trytond.modules.company.tests import create_company, set_company
from trytond.pool import Pool
from trytond.tests.test_tryton import (
    activate_module, drop_db, with_transaction)

from hrp_materials.tests.test_consumption import Hospital, receive
from hrp_materials.tests.tools import create_user

from .test_maintenance import pacs_usage
from .test_module import create_equipment


class UsageTestCase(unittest.TestCase):
    "Monthly usage collection"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        drop_db()
        activate_module(['hrp_equipment'])

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        drop_db()

    @with_transaction()
    def test_collect(self):
        "Every collected figure of a month, from its source"
        pool = Pool()
        Repair = pool.get('hrp.equipment.repair')
        Part = pool.get('hrp.equipment.repair.part')
        Plan = pool.get('hrp.equipment.maintenance.plan')
        Order = pool.get('hrp.equipment.maintenance')
        Consumption = pool.get('hrp.consumption')
        Usage = pool.get('hrp.equipment.usage')
        Endpoint = pool.get('his.endpoint')
        Item = pool.get('his.charge.item')
        Revenue = pool.get('his.revenue')
        Date = pool.get('ir.date')
        from his_connector.revenue import Revenue as Figures
        today = Date.today()
        month = today.replace(day=1)
        previous = (month - dt.timedelta(days=1)).replace(day=1)
        company = create_company()
        with set_company(company):
            h = Hospital(company)
            dsa = create_equipment(
                company, h.cardio, code='DSA-01', name="血管造影机",
                category='dsa', pacs_device='DSA01')
            other = create_equipment(
                company, h.cardio, code='DSA-02', name="血管造影机2",
                category='dsa', pacs_device='DSA02')

            # out of service from the 30th of last month 20:00 to the 2nd
            # 08:00, with a shorter fault inside; a minor fault does not
            # count
            start = dt.datetime.combine(month, dt.time())
            long_, inside, minor = Repair.create([{
                        'equipment': dsa.id, 'symptom': "C臂无法旋转",
                        }, {
                        'equipment': dsa.id, 'symptom': "高压报错",
                        }, {
                        'equipment': dsa.id, 'symptom': "检查床按键松动",
                        'out_of_service': False,
                        }])
            engineer = create_user(
                'engineer', 'hrp_equipment.group_equipment_engineer',
                company)
            closed = {'state': 'closed', 'engineer': engineer.id,
                'diagnosis': "已修复"}
            Repair.write([long_], {
                    **closed,
                    'reported_at': start - dt.timedelta(hours=4),
                    'accepted_at': start + dt.timedelta(hours=32),
                    'labour_cost': Decimal('300'),
                    'external_cost': Decimal('1200'),
                    }, [inside], {
                    **closed,
                    'reported_at': start + dt.timedelta(hours=12),
                    'accepted_at': start + dt.timedelta(hours=18),
                    }, [minor], {
                    **closed,
                    'reported_at': start - dt.timedelta(days=3),
                    'accepted_at': start - dt.timedelta(days=2),
                    'labour_cost': Decimal('50'),
                    })
            Part.create([{
                        'repair': long_.id, 'product': h.gauze.id,
                        'unit': h.gauze.default_uom.id, 'quantity': 1,
                        'store': h.central.id, 'amount': Decimal('3500'),
                        }])

            plan, = Plan.create([{
                        'equipment': dsa.id, 'name': "月度保养",
                        'interval_days': 30,
                        }])
            done, before = Order.create([{
                        'company': company.id, 'plan': plan.id,
                        'equipment': dsa.id, 'due_date': today,
                        'cost': Decimal('800'),
                        }, {
                        'company': company.id, 'plan': plan.id,
                        'equipment': dsa.id, 'due_date': previous,
                        'cost': Decimal('500'),
                        }])
            Order.do([done, before])
            Order.write([before], {'done_date': previous})

            # 20 gauze used for the DSA, 10 for nothing in particular
            receive(company, h.cardio_store, h.gauze, 50)
            used_for, not_for = Consumption.create([{
                        'company': company.id, 'department': h.cardio.id,
                        'store': h.cardio_store.id, 'kind': 'bulk',
                        'date': today, 'hrp_equipment': dsa.id,
                        'lines': [('create', [{
                                        'product': h.gauze.id,
                                        'quantity': 20}])],
                        }, {
                        'company': company.id, 'department': h.cardio.id,
                        'store': h.cardio_store.id, 'kind': 'bulk',
                        'date': today,
                        'lines': [('create', [{
                                        'product': h.gauze.id,
                                        'quantity': 10}])],
                        }])
            Consumption.done([used_for, not_for])

            # the angiography item is billed for both devices: 9,000 the
            # HIS recorded on DSA02, 6,000 without a device shared 2:1 by
            # their examinations
            pacs_usage(company, {
                    ('DSA01', today): 20, ('DSA02', today): 10})
            his, = Endpoint.create([{
                        'name': "HIS", 'kind': 'fhir', 'purpose': 'his',
                        'url': 'http://his.example/',
                        }])
            item, = Item.create([{
                        'company': company.id, 'endpoint': his.id,
                        'code': 'DSA-ZY', 'name': "血管造影",
                        }])
            for device in [dsa, other]:
                device.charge_items = [item]
            pool.get('hrp.equipment').save([dsa, other])
            Revenue.record_revenue(his, [
                    Figures(today, 'DSA-ZY', 'DSA02', Decimal(3),
                        Decimal('9000')),
                    Figures(today, 'DSA-ZY', '', Decimal(2),
                        Decimal('6000')),
                    ])

            figures = Usage.collect_month(company, today)
            self.assertEqual(sorted(figures), [dsa.id, other.id])
            usage, other_usage = Usage.search(
                [('month', '=', month)], order=[('equipment', 'ASC')])
            self.assertEqual(figures[dsa.id].id, usage.id)
            self.assertEqual(figures[dsa.id].profit, usage.profit)
            self.assertEqual(usage.equipment, dsa)
            self.assertEqual(usage.month, month)
            self.assertEqual(usage.exams, 20)
            self.assertEqual(usage.hours_used, Decimal('8.00'))
            self.assertEqual(usage.downtime_hours, Decimal('32.00'))
            self.assertEqual(usage.repair_cost, Decimal('5000.00'))
            self.assertEqual(usage.maintenance_cost, Decimal('800.00'))
            self.assertEqual(usage.consumables_cost, Decimal('50.00'))
            self.assertEqual(usage.revenue, Decimal('4000.00'))
            self.assertEqual(other_usage.revenue, Decimal('11000.00'))
            self.assertEqual(usage.depreciation, Decimal('0.00'))

            # entered figures are kept by a new collection
            Usage.write([usage], {
                    'upkeep_cost': Decimal('700'), 'papers': 1})
            Usage.collect([usage])
            usage = Usage(usage.id)
            self.assertEqual(usage.upkeep_cost, Decimal('700'))
            self.assertEqual(usage.papers, 1)
            self.assertEqual(usage.total_cost, Decimal('6550.00'))
            self.assertEqual(usage.profit, Decimal('-2550.00'))
            calendar_hours = usage.calendar_hours
            self.assertEqual(usage.hours_available, (
                    24 * (calendar_hours - 32) / calendar_hours
                    * calendar_hours / 24).quantize(Decimal('0.01')))
