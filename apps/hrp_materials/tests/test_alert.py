# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Inventory alerts (库存预警): each kind opens when its condition holds,
once, tells the responsible people (notification, SMS when critical, the
daily e-mail digest), is acknowledged and resolved by them with the
reason, or resolved by the check when the condition clears."""
import json
import unittest

from trytond.exceptions import UserError
from trytond.modules.company.tests import create_company, set_company
from trytond.pool import Pool
from trytond.tests.test_tryton import (
    activate_module, drop_db, with_transaction)
from trytond.transaction import Transaction

from .test_consumption import create_lots, days, receive
from .test_replenishment import Wards
from .tools import as_user, create_user


def alerts(**domain):
    Alert = Pool().get('hrp.alert')
    return {(a.kind, a.subject): a for a in Alert.search(
            [(k, '=', v) for k, v in domain.items()])}


class AlertTestCase(unittest.TestCase):
    "Inventory alerts"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        drop_db()
        activate_module(['hrp_materials'])

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        drop_db()

    def hospital(self, company):
        """The wards with an alert of every kind waiting: gauze short in
        cardiology, syringes out of stock in orthopaedics, a lot near
        expiry, an expired one, stock idle for 120 days, a licence and a
        registration certificate expiring"""
        pool = Pool()
        Replenishment = pool.get('hrp.replenishment')
        Licence = pool.get('hrp.supplier.licence')
        Party = pool.get('party.party')
        Employee = pool.get('company.employee')
        h = Wards(company)
        Replenishment.compute_company(company)
        Replenishment.create([{
                    'store': h.ortho_store.id, 'product': h.syringe.id,
                    'minimum': 10, 'maximum': 40,
                    }])
        h.injection.hrp_near_expiry_days = 60
        h.injection.save()
        h.near, h.expired = create_lots(
            h.syringe, ('N-45', days(45)), ('X-2', days(-2)))
        receive(h.company, h.cardio_store, h.syringe, 12, lot=h.near)
        receive(h.company, h.cardio_store, h.syringe, 3, lot=h.expired)
        receive(h.company, h.ortho_store, h.a4, 8, date=days(-120))
        Licence.create([{
                    'party': h.supplier.id, 'type': 'business',
                    'number': 'JY-2020-77', 'expiry': days(10),
                    }])
        h.gauze.template.registration_number = '国械注准20193140001'
        h.gauze.template.registration_expiry = days(20)
        h.gauze.template.save()
        h.procurement = create_user(
            'procurement', 'hrp_materials.group_procurement', company)
        # the head nurse has a mobile number and an e-mail address
        party, = Party.create([{
                    'name': "王护士长",
                    'contact_mechanisms': [('create', [{
                                    'type': 'mobile',
                                    'value': '+8613800138000'}])],
                    }])
        employee, = Employee.create([{
                    'party': party.id, 'company': company.id}])
        h.head_nurse.employee = employee
        h.head_nurse.employees = [employee]
        h.head_nurse.email = 'wang@hospital.example'
        h.head_nurse.save()
        h.ortho.head_nurse = h.head_nurse
        h.ortho.members = list(h.ortho.members) + [h.head_nurse]
        h.ortho.save()
        return h

    def endpoints(self, company):
        Endpoint = Pool().get('his.endpoint')
        Endpoint.create([{
                    'name': "短信猫", 'company': company.id,
                    'purpose': 'sms', 'kind': 'sms_modem',
                    'url': '/dev/ttyUSB0',
                    }, {
                    'name': "邮件", 'company': company.id,
                    'purpose': 'email', 'kind': 'smtp',
                    'url': 'smtp://127.0.0.1:2525',
                    'email_from': 'hrp@hospital.example',
                    }])

    @with_transaction()
    def test_each_kind(self):
        "The check opens one alert per condition, each with its role"
        pool = Pool()
        Alert = pool.get('hrp.alert')
        ModelData = pool.get('ir.model.data')
        company = create_company()
        with set_company(company):
            h = self.hospital(company)
            with Transaction().set_user(0):
                created = Alert.generate()
            found = alerts()
            self.assertEqual(len(created), len(found))
            kinds = {kind for kind, _ in found}
            self.assertEqual(kinds, {
                    'below_safety', 'below_minimum', 'out_of_stock',
                    'near_expiry', 'expired', 'slow_moving', 'licence_expiring',
                    'certificate_expiring'})

            head_nurse = ModelData.get_id(
                'hrp_materials', 'group_head_nurse')
            procurement = ModelData.get_id(
                'hrp_materials', 'group_procurement')
            # the hospital's gauze (40) is below the central store's
            # reorder point, above its safety stock
            central = found['below_minimum', h.gauze.rec_name]
            self.assertEqual(central.store, h.central)
            self.assertEqual(central.quantity, 40)
            self.assertEqual(central.group.id, ModelData.get_id(
                    'hrp_materials', 'group_store_keeper'))
            gauze = found['below_safety', h.gauze.rec_name]
            self.assertEqual(gauze.store, h.cardio_store)
            self.assertEqual(gauze.department, h.cardio)
            self.assertEqual(gauze.severity, 'warning')
            self.assertEqual(gauze.group.id, head_nurse)
            self.assertEqual(gauze.quantity, 5)
            self.assertIn("心内科二级库", gauze.title)

            syringe = found['out_of_stock', h.syringe.rec_name]
            self.assertEqual(syringe.store, h.ortho_store)
            self.assertEqual(syringe.severity, 'critical')
            self.assertEqual(syringe.threshold, 0)

            near = found['near_expiry',
                f'{h.syringe.rec_name} ({h.near.number})']
            self.assertEqual(near.lot, h.near)
            self.assertEqual(near.quantity, 12)
            self.assertEqual(near.date, days(45))
            expired = found['expired',
                f'{h.syringe.rec_name} ({h.expired.number})']
            self.assertEqual(expired.quantity, 3)
            self.assertEqual(expired.severity, 'critical')

            idle = found['slow_moving', h.a4.rec_name]
            self.assertEqual(idle.store, h.ortho_store)
            self.assertEqual(idle.date, days(-120))

            licence, = [a for (k, _), a in found.items()
                if k == 'licence_expiring']
            self.assertEqual(licence.supplier, h.supplier)
            self.assertEqual(licence.group.id, procurement)
            self.assertIn("JY-2020-77", licence.title)
            self.assertEqual(licence.licence.number, 'JY-2020-77')
            certificate, = [a for (k, _), a in found.items()
                if k == 'certificate_expiring']
            self.assertEqual(certificate.product, h.gauze)
            self.assertIn("国械注准20193140001", certificate.title)

            # the check again finds the same conditions: nothing new
            with Transaction().set_user(0):
                self.assertEqual(Alert.generate(), [])
            self.assertEqual(len(alerts()), len(found))

            # a near-expiry default of 30 days does not cover 45 when the
            # category does not ask for 60
            h.injection.hrp_near_expiry_days = None
            h.injection.save()
            with Transaction().set_user(0):
                Alert.generate()
            near = Alert(near.id)
            self.assertEqual(near.state, 'resolved')
            self.assertEqual(near.resolved_by.id, 0)
            self.assertTrue(near.resolution)

    @with_transaction()
    def test_below_minimum_and_clearing(self):
        """Stock between the safety stock and the reorder point is below
        minimum; restocking clears the alert, which the check resolves"""
        pool = Pool()
        Alert = pool.get('hrp.alert')
        Replenishment = pool.get('hrp.replenishment')
        company = create_company()
        with set_company(company):
            h = self.hospital(company)
            ward, = Replenishment.search([
                    ('store', '=', h.cardio_store.id),
                    ('product', '=', h.gauze.id)])
            receive(company, h.cardio_store, h.gauze, 2)
            self.assertGreaterEqual(7, ward.safety_stock)
            self.assertLessEqual(7, ward.reorder_point)
            with Transaction().set_user(0):
                Alert.generate()
            alert = alerts(store=h.cardio_store.id, product=h.gauze.id)[
                'below_minimum', h.gauze.rec_name]
            self.assertEqual(alert.severity, 'info')
            self.assertEqual(alert.threshold, ward.reorder_point)

            receive(company, h.cardio_store, h.gauze, 50)
            with Transaction().set_user(0):
                Alert.generate()
            alert = Alert(alert.id)
            self.assertEqual(alert.state, 'resolved')
            self.assertIsNotNone(alert.resolved_at)

    @with_transaction()
    def test_delivery_and_states(self):
        """New alerts notify their role's users of the department; the
        critical ones go by SMS; the digest e-mails what is open; people
        acknowledge and resolve with the reason"""
        pool = Pool()
        Alert = pool.get('hrp.alert')
        Notification = pool.get('res.notification')
        Outbox = pool.get('his.outbox')
        company = create_company()
        with set_company(company):
            h = self.hospital(company)
            self.endpoints(company)
            with Transaction().set_user(0):
                Alert.generate()

            # the head nurse of both wards, the procurement officer
            nurse_notes = Notification.search(
                [('user', '=', h.head_nurse.id)])
            labels = {n.label for n in nurse_notes}
            out_of_stock = alerts()['out_of_stock', h.syringe.rec_name]
            self.assertIn(out_of_stock.title, labels)
            self.assertEqual(
                len(nurse_notes),
                len([a for a in alerts().values() if a.department]))
            self.assertEqual(
                {n.label for n in Notification.search(
                        [('user', '=', h.procurement.id)])},
                {a.title for a in alerts().values()
                    if a.kind.endswith('_expiring')})
            self.assertFalse(Notification.search(
                    [('user', '=', h.nurse.id)]))

            sms = Outbox.search([('operation', '=', 'send_sms')])
            critical = [a for a in alerts().values()
                if a.severity == 'critical' and a.department]
            self.assertEqual(len(sms), len(critical))
            texts = {json.loads(m.payload)['text'] for m in sms}
            self.assertEqual(texts, {a.title for a in critical})
            self.assertEqual(
                {json.loads(m.payload)['number'] for m in sms},
                {'+8613800138000'})

            sent = Alert.send_digest()
            mail, = [m for m in sent
                if json.loads(m.payload)['to'] == h.head_nurse.email]
            body = json.loads(mail.payload)['text']
            for alert in alerts().values():
                if alert.department:
                    self.assertIn(alert.title, body)
            self.assertEqual(len(sent), 1)  # the officer has no address
            self.assertEqual(Alert.send_digest(), sent)  # same key, once

            with as_user(h.head_nurse, company):
                visible = Alert.search([])
                self.assertTrue(visible)
                self.assertTrue(all(a.department for a in visible))
                Alert.acknowledge([Alert(out_of_stock.id)])
                with self.assertRaises(UserError) as cm:
                    Alert.resolve([Alert(out_of_stock.id)])
                self.assertIn(out_of_stock.title, str(cm.exception))
                Alert.write([Alert(out_of_stock.id)], {
                        'resolution': "已从中心库调拨 20 支",
                        })
                Alert.resolve([Alert(out_of_stock.id)])
            alert = Alert(out_of_stock.id)
            self.assertEqual(alert.acknowledged_by, h.head_nurse)
            self.assertEqual(alert.resolved_by, h.head_nurse)
            self.assertEqual(alert.state, 'resolved')
            self.assertIsNotNone(alert.acknowledged_at)
            with as_user(h.head_nurse, company):
                with self.assertRaises(UserError):
                    Alert.delete([Alert(out_of_stock.id)])

            # still out of stock: the check opens a new alert for it
            with Transaction().set_user(0):
                again, = [a for a in Alert.generate()
                    if a.kind == 'out_of_stock']
            self.assertEqual(again.store, h.ortho_store)

            # the dashboard counts the open alerts by store and severity
            Summary = pool.get('hrp.alert.summary')
            rows = {r.store: r for r in Summary.search([])}
            ortho = rows[h.ortho_store]
            open_ortho = Alert.search([
                    ('store', '=', h.ortho_store.id),
                    ('state', '!=', 'resolved')])
            self.assertEqual(ortho.total, len(open_ortho))
            self.assertEqual(ortho.critical, len(
                    [a for a in open_ortho if a.severity == 'critical']))
