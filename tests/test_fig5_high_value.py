# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""The paper's Fig. 5 end to end (issue 6): high-value consumables kept on
consignment in the operating theatre, against the real GNU Health HIS
(tests/peers/gnuhealth_peer.py), the SMS modem emulator on a
pseudo-terminal and a real SMTP server.

1. The supplier delivers stents on consignment; the store keeper receives
   them unit by unit by scanning their UDI: the units stay the supplier's.
2. After the surgery the theatre nurse enters the inpatient number: the
   patient comes from the HIS; she scans the used units and posts.
3. Ownership passes: the supplier's invoice lines at the contract price.
4. The charges (HIS item, unit, lot and serial) reach the HIS, once each.
5. The used products summary is exported as a spreadsheet.
6. Publishing sends the supplier its consumption and the quantity that
   restores the agreed level, by SMS (Chinese text) and by e-mail.

The users and the supplier speak zh_CN; the documents are committed and
the outbox is delivered by queue tasks in their own transactions, as
trytond-worker runs them."""
import os
from decimal import Decimal
from types import SimpleNamespace

import pytest

from his_connector.sms_emulator import ModemEmulator
from his_connector.tests.test_outbox import (
    committed, messages, run_queue, settings)
from tests.test_his_gnuhealth import lines_of
from tests.test_supplier_publishing import (
    ADDRESS, NUMBER, SENDER, Mailbox, mails, mail_server, modem)

pytestmark = pytest.mark.slow

INPATIENT = 'ZY2026000123'
SURGERY = 'SS2026000456'
STENT_ITEM = 'C-0001'
CREDENTIAL = 'HRP_CRED_TEST_FIG5_GNUHEALTH'


@pytest.fixture(scope='module')
def database():
    from trytond.pool import Pool
    from trytond.tests.test_tryton import activate_module, drop_db

    from hrp import i18n
    drop_db()
    # English data (Tryton's chart of accounts) with the zh_CN strings of
    # the HRP modules, as the demo site has
    activate_module(i18n.MODULES)
    with committed():
        pool = Pool()
        Lang = pool.get('ir.lang')
        Translation = pool.get('ir.translation')
        Lang.write(Lang.search([('code', '=', 'zh_CN')]), {
                'translatable': True})
        for module in i18n.MODULES:
            Translation.translation_import(
                'zh_CN', module, i18n.po_path(module))
    with settings(retry_base=30, retry_cap=3600, stale_grace=0,
            batch_size=50):
        yield
    drop_db()


@pytest.fixture(scope='module')
def theatre(database, gnuhealth_peer):
    """The operating theatre, its high-value store and nurse, a qualified
    supplier with a contract price, a mobile number and an e-mail address,
    its agreed level for the stent (1 to 4), and the GNU Health HIS whose
    catalogue item C-0001 bills the stent"""
    from trytond.modules.company.tests import set_company
    from trytond.pool import Pool

    from hrp_materials.tests.test_consignment import Theatre
    from hrp_materials.tests.tools import run_like_dispatcher

    os.environ[CREDENTIAL] = gnuhealth_peer.password

    def build():
        pool = Pool()
        Party = pool.get('party.party')
        Level = pool.get('hrp.agreed.level')
        Endpoint = pool.get('his.endpoint')
        Item = pool.get('his.charge.item')
        Mapping = pool.get('his.product.mapping')
        h = Theatre()
        with set_company(h.company):
            zh_cn, = pool.get('ir.lang').search([('code', '=', 'zh_CN')])
            Party.write([h.supplier], {
                    'lang': zh_cn.id,
                    'contact_mechanisms': [('create', [
                                {'type': 'mobile', 'value': NUMBER},
                                {'type': 'email', 'value': ADDRESS},
                                ])]})
            Level.create([{
                        'company': h.company.id, 'store': h.store.id,
                        'supplier': h.supplier.id, 'product': h.stent.id,
                        'safety_quantity': 1, 'maximum_quantity': 4}])
            endpoint, = Endpoint.create([{
                        'name': "GNU Health", 'company': h.company.id,
                        'purpose': 'his', 'kind': 'gnuhealth',
                        'url': gnuhealth_peer.url,
                        'database': gnuhealth_peer.database,
                        'username': gnuhealth_peer.login,
                        'credential_env': CREDENTIAL,
                        'connect_timeout': 2.0, 'read_timeout': 20.0,
                        'max_attempts': 3,
                        }])
            Item.refresh_catalogues()
            item, = Item.search([('code', '=', STENT_ITEM)])
            Mapping.create([{
                        'company': h.company.id, 'product': h.stent.id,
                        'charge_item': item.id, 'unit_factor': 1}])
            return SimpleNamespace(
                company_id=h.company.id, h=h,
                supplier_name=h.supplier.rec_name,
                stent_name=h.stent.template.name)
    # the test helpers find the units by their English names
    result, _ = run_like_dispatcher(0, {'language': 'en'}, build)
    yield result
    os.environ.pop(CREDENTIAL, None)


def as_user(theatre, user, func):
    """Run func in its own transaction as user of the theatre's company
    through the access checks, like a request from the desk (as the
    scheduled jobs and the worker do, without them, for user None)"""
    from hrp_materials.tests.tools import run_like_dispatcher
    context = {
        'company': theatre.company_id, 'companies': [theatre.company_id],
        'language': 'zh_CN'}
    if user is not None:
        context['_check_access'] = True
    result, _ = run_like_dispatcher(
        user.id if user is not None else 0, context, func)
    return result


def test_fig5(theatre, gnuhealth_peer):
    from trytond.pool import Pool
    from trytond.transaction import Transaction

    from hrp_materials.tests.test_consumption import days, today
    from hrp_materials.tests.test_receiving import gs1, gtin
    from hrp_materials.tests.test_usage_summary import spreadsheet_rows
    h = theatre.h
    serials = ['FIG5-001', 'FIG5-002', 'FIG5-003']

    def udi(serial):
        return gs1(gtin(2), expiry=days(400), lot='B2026', serial=serial)

    with ModemEmulator() as emulator, Mailbox() as mailbox:
        modem(theatre, emulator)
        mail_server(theatre, mailbox)

        # 1. the supplier's units received on consignment by scan
        def receive():
            Receipt = Pool().get('hrp.receipt')
            receipt, = Receipt.create([{
                        'company': theatre.company_id, 'kind': 'consignment',
                        'supplier': h.supplier.id, 'store': h.store.id}])
            for serial in serials:
                Receipt.scan_barcode(receipt.id, udi(serial))
            Receipt.receive([receipt])
            Stock = Pool().get('hrp.consignment.stock')
            return [(r.supplier.id, r.lot.number, r.quantity)
                for r in Stock.search([])]
        assert as_user(theatre, h.keeper, receive) == [
            (h.supplier.id, s, 1) for s in serials]

        # 2. after the surgery: the patient from the HIS, two units scanned
        def register():
            Consumption = Pool().get('hrp.consumption')
            consumption, = Consumption.create([{
                        'department': h.theatre.id, 'store': h.store.id,
                        'kind': 'patient', 'inpatient_number': INPATIENT,
                        'surgery_number': SURGERY}])
            Consumption.look_up_patient([consumption])
            for serial in serials[:2]:
                Consumption.scan_barcode(consumption.id, udi(serial))
            Consumption.done([consumption])
            consumption = Consumption(consumption.id)
            return SimpleNamespace(
                id=consumption.id, state=consumption.state,
                patient=consumption.patient_name,
                check=consumption.his_patient_check,
                lines=[SimpleNamespace(
                        id=l.id, serial=l.lot.number, consignor=l.consignor.id,
                        unit_cost=l.unit_cost, charge=l.his_charge.id)
                    for l in consumption.lines])
        registration = as_user(theatre, h.nurse, register)
        assert registration.state == 'done'
        assert registration.patient == '张三'
        assert registration.check == 'confirmed'
        assert sorted(l.serial for l in registration.lines) == serials[:2]

        # 3. ownership passed: invoice lines at the contract price
        def invoiced():
            InvoiceLine = Pool().get('account.invoice.line')
            return [(l.party.id, l.quantity, l.unit_price)
                for l in InvoiceLine.search([])]
        assert as_user(theatre, None, invoiced) == [
            (h.supplier.id, 1, Decimal('6200.0000'))] * 2
        for line in registration.lines:
            assert line.consignor == h.supplier.id
            assert line.unit_cost == Decimal('6200.0000')

        # 4. the charges reach the HIS, once each
        run_queue()
        run_queue()
        charges = messages([l.charge for l in registration.lines])
        assert {m.state for m in charges.values()} == {'delivered'}
        session = gnuhealth_peer.admin_session()

        def admin(method, *params):
            return gnuhealth_peer.admin_rpc(method, list(params), session)
        for line in registration.lines:
            service_lines = lines_of(
                admin, f'hrp.consumption.line-{line.id}')
            assert len(service_lines) == 1, service_lines
            service_line, = service_lines
            assert service_line['product.']['code'] == STENT_ITEM
            assert service_line['qty'] == 1
            assert line.serial in service_line['desc'], service_line

        # 5. the used products summary exported as a spreadsheet
        def export():
            pool = Pool()
            Summary = pool.get('hrp.usage.summary')
            Report = pool.get('hrp.usage.summary.report', type='report')
            with Transaction().set_context(
                    from_date=today(), to_date=today()):
                ids = [r.id for r in Summary.search([])]
                return Report.execute(
                    ids, {'model': Summary.__name__, 'ids': ids})[:2]
        sheet = spreadsheet_rows(*as_user(theatre, h.keeper, export))
        assert sheet[0] == ["已使用产品汇总"]
        assert sheet[2][:4] == ["供应商", "库房", "物资", "数量"]
        assert sheet[3][0] == theatre.supplier_name
        assert sheet[3][3] == 2.0
        assert len(sheet) == 4

        # 6. the supplier told by SMS and e-mail: 2 used, 1 left at the
        # safety quantity: 4 - 1 to deliver
        def publish():
            Message = Pool().get('hrp.supplier.message')
            return [SimpleNamespace(
                    text=m.text, subject=m.subject(),
                    sent=[m.outbox.id, m.email_outbox.id])
                for m in Message.publish()]
        message, = as_user(theatre, None, publish)
        assert f"{theatre.stent_name} 2" in message.text, message.text
        assert f"请补货：{theatre.stent_name} 3" in message.text
        assert "手术室高值库" in message.text
        run_queue()
        run_queue()
        states = messages(message.sent)
        assert [states[i].state for i in message.sent] == [
            'delivered', 'delivered']
        assert [(m['number'], m['text']) for m in emulator.messages] == [
            (NUMBER, message.text)]
        assert mails(mailbox) == [
            ([ADDRESS], SENDER, message.subject, message.text)]
