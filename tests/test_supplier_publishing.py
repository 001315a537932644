# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Consumption published to the suppliers (issue 6, part 4): stents received
from a supplier by scan, issued to the operating theatre's high-value store
and used there; publishing sends the supplier, through the modem emulator
on a pseudo-terminal, the Chinese text of what was used and the quantity
that restores its agreed level; nothing new used, nothing sent again; a
modem that is gone delays the message, which reaches the phone once when
it is back.

The database speaks zh_CN (the template of tests/test_zh_cn.py); the
documents are committed, the outbox delivered by queue tasks in their own
transactions as trytond-worker runs them."""
from types import SimpleNamespace

import pytest

from his_connector.sms_emulator import ModemEmulator
from his_connector.tests.test_outbox import (
    create_endpoint, deactivate_others, make_due, messages, run_queue,
    settings)

NUMBER = '13800000000'


@pytest.fixture(scope='module')
def database():
    from trytond.tests.test_tryton import activate_module, drop_db

    from hrp import i18n
    drop_db()
    activate_module(i18n.MODULES, lang='zh_CN')
    with settings(retry_base=30, retry_cap=3600, stale_grace=0,
            batch_size=50):
        yield
    drop_db()


@pytest.fixture(scope='module')
def theatre(database):
    """Three stents of a supplier received by scan into the central store
    and issued to the theatre's high-value store, whose agreed level with
    the supplier is 2 to 5"""
    from trytond.modules.company.tests import set_company
    from trytond.pool import Pool

    from hrp_materials.tests.test_consumption import days, today
    from hrp_materials.tests.test_receiving import Receiving, gs1, gtin
    from hrp_materials.tests.tools import (
        create_cost_center, create_department, create_store,
        run_like_dispatcher)

    def build():
        pool = Pool()
        Move = pool.get('stock.move')
        Party = pool.get('party.party')
        Receipt = pool.get('hrp.receipt')
        Level = pool.get('hrp.agreed.level')
        h = Receiving()
        with set_company(h.company):
            Party.write([h.supplier], {
                    'contact_mechanisms': [('create', [{
                                    'type': 'mobile', 'value': NUMBER}])]})
            department = create_department(
                h.company, 'SSS', "手术室",
                cost_center=create_cost_center(h.company, "手术室成本").id)
            store = create_store("手术室高值库", department, 'high_value')
            store.parent = h.warehouse
            store.save()
            purchase = h.purchase([(h.stent, 3)])
            receipt = h.receipt(purchase)
            for serial in ['SN1', 'SN2', 'SN3']:
                Receipt.scan_barcode(receipt.id, gs1(
                        gtin(2), expiry=days(400), lot='B1', serial=serial))
            Receipt.receive([receipt])
            lots = [l.lot.id for l in Receipt(receipt.id).lines]
            moves = Move.create([{
                        'product': h.stent.id, 'unit': h.stent.default_uom.id,
                        'quantity': 1, 'lot': lot,
                        'from_location': h.central.id,
                        'to_location': store.id, 'company': h.company.id,
                        'effective_date': today(),
                        } for lot in lots])
            Move.do(moves)
            Level.create([{
                        'company': h.company.id, 'store': store.id,
                        'supplier': h.supplier.id, 'product': h.stent.id,
                        'safety_quantity': 2, 'maximum_quantity': 5}])
            return SimpleNamespace(
                company_id=h.company.id, department_id=department.id,
                store_id=store.id, stent_id=h.stent.id, lots=lots,
                stent_name=h.stent.template.name)
    # the test helpers find the units by their English names
    result, _ = run_like_dispatcher(0, {'language': 'en'}, build)
    return result


def use(theatre, lots):
    "Post a bulk registration of the stents of lots in the theatre store"
    from trytond.pool import Pool

    from hrp_materials.tests.tools import run_like_dispatcher

    def post():
        Consumption = Pool().get('hrp.consumption')
        consumption, = Consumption.create([{
                    'department': theatre.department_id,
                    'store': theatre.store_id,
                    'kind': 'bulk',
                    'lines': [('create', [{
                                    'product': theatre.stent_id,
                                    'quantity': 1, 'lot': lot,
                                    } for lot in lots])],
                    }])
        Consumption.post([consumption])
    run_like_dispatcher(0, {'company': theatre.company_id}, post)


def publish():
    "Publish as the scheduled job does; return the messages' values"
    from trytond.pool import Pool

    from hrp_materials.tests.tools import run_like_dispatcher

    def job():
        return [SimpleNamespace(
                id=m.id, text=m.text, number=m.number,
                outbox=m.outbox.id if m.outbox else None)
            for m in Pool().get('hrp.supplier.message').publish()]
    published, _ = run_like_dispatcher(0, {}, job)
    return published


def modem(theatre, emulator):
    endpoint_id = create_endpoint(
        theatre.company_id, purpose='sms', kind='sms_modem',
        url=emulator.device, read_timeout=2.0)
    deactivate_others(theatre.company_id, 'sms', endpoint_id)


def test_publish(theatre):
    "The usage and the restock reach the supplier's phone once, in Chinese"
    with ModemEmulator() as emulator:
        modem(theatre, emulator)
        run_queue()
        use(theatre, theatre.lots[:2])
        message, = publish()
        assert message.number == NUMBER
        # 2 used; 1 left, at or below the safety quantity: 5 - 1 restock
        assert f"{theatre.stent_name} 2" in message.text, message.text
        assert message.text.startswith("【"), message.text
        assert "已使用" in message.text and "手术室高值库" in message.text
        assert f"请补货：{theatre.stent_name} 4" in message.text
        run_queue()
        run_queue()
        assert messages([message.outbox])[message.outbox].state == (
            'delivered')
        assert [(m['number'], m['text']) for m in emulator.messages] == [
            (NUMBER, message.text)]

        # nothing used since: nothing sent
        assert publish() == []
        run_queue()
        assert len(emulator.messages) == 1

    # the modem is gone: the next message waits in the outbox
    use(theatre, theatre.lots[2:])
    message, = publish()
    assert f"{theatre.stent_name} 1" in message.text
    run_queue()
    stored = messages([message.outbox])[message.outbox]
    assert stored.state == 'retrying', stored.state
    with ModemEmulator() as emulator:
        modem(theatre, emulator)
        make_due([message.outbox])
        run_queue()
        run_queue()
        assert messages([message.outbox])[message.outbox].state == (
            'delivered')
        assert [m['text'] for m in emulator.messages] == [message.text]
        run_queue()
        assert len(emulator.messages) == 1
