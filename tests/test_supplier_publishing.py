# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Consumption published to the suppliers (issue 6, part 4): stents received
from a supplier by scan, issued to the operating theatre's high-value store
and used there; publishing sends the supplier, through the modem emulator
on a pseudo-terminal, the Chinese text of what was used and the quantity
that restores its agreed level, and the same text by e-mail through a real
SMTP server (aiosmtpd); nothing new used, nothing sent again; a modem or a
mail server that is gone delays the message, which arrives once when it is
back.

The database speaks zh_CN (the template of tests/test_zh_cn.py); the
documents are committed, the outbox delivered by queue tasks in their own
transactions as trytond-worker runs them."""
import email
import email.policy
import socket
from types import SimpleNamespace

import pytest
from aiosmtpd.controller import Controller

from his_connector.sms_emulator import ModemEmulator
from his_connector.tests.test_outbox import (
    create_endpoint, deactivate_others, make_due, messages, run_queue,
    settings)

NUMBER = '13800000000'
ADDRESS = 'orders@supplier.example.cn'
SENDER = 'hrp@hospital.example.cn'


class Mailbox:
    "A real SMTP server on localhost keeping what it receives"

    def __init__(self, port=None):
        self.port = port or free_port()
        self.received = []
        self.controller = Controller(
            self, hostname='127.0.0.1', port=self.port)

    async def handle_DATA(self, server, session, envelope):
        self.received.append((envelope.rcpt_tos, email.message_from_bytes(
                    envelope.content, policy=email.policy.default)))
        return '250 Message accepted'

    def __enter__(self):
        self.controller.start()
        return self

    def __exit__(self, *exc):
        self.controller.stop()


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


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
                                    'type': 'mobile', 'value': NUMBER,
                                    }, {
                                    'type': 'email', 'value': ADDRESS,
                                    }])]})
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
                id=m.id, text=m.text, number=m.number, email=m.email,
                subject=m.subject(),
                outbox=m.outbox.id if m.outbox else None,
                email_outbox=m.email_outbox.id if m.email_outbox else None)
            for m in Pool().get('hrp.supplier.message').publish()]
    published, _ = run_like_dispatcher(0, {}, job)
    return published


def modem(theatre, emulator):
    endpoint_id = create_endpoint(
        theatre.company_id, purpose='sms', kind='sms_modem',
        url=emulator.device, read_timeout=2.0)
    deactivate_others(theatre.company_id, 'sms', endpoint_id)


def mail_server(theatre, mailbox):
    endpoint_id = create_endpoint(
        theatre.company_id, purpose='email', kind='smtp',
        url=f'smtp://127.0.0.1:{mailbox.port}', email_from=SENDER)
    deactivate_others(theatre.company_id, 'email', endpoint_id)


def mails(mailbox):
    return [(to, m['From'], m['Subject'], m.get_content().strip())
        for to, m in mailbox.received]


def test_publish(theatre):
    """The usage and the restock reach the supplier's phone and mailbox
    once, in Chinese"""
    with ModemEmulator() as emulator, Mailbox() as mailbox:
        modem(theatre, emulator)
        mail_server(theatre, mailbox)
        run_queue()
        use(theatre, theatre.lots[:2])
        message, = publish()
        assert message.number == NUMBER
        assert message.email == ADDRESS
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
        assert messages([message.email_outbox])[
            message.email_outbox].state == 'delivered'
        assert "手术室高值库" in message.subject, message.subject
        assert mails(mailbox) == [
            ([ADDRESS], SENDER, message.subject, message.text)]

        # nothing used since: nothing sent
        assert publish() == []
        run_queue()
        assert len(emulator.messages) == 1
        assert len(mailbox.received) == 1
        port = mailbox.port

    # the modem and the mail server are gone: the next message waits in
    # the outbox
    use(theatre, theatre.lots[2:])
    message, = publish()
    assert f"{theatre.stent_name} 1" in message.text
    run_queue()
    sent = [message.outbox, message.email_outbox]
    stored = messages(sent)
    assert [stored[i].state for i in sent] == ['retrying', 'retrying']
    with ModemEmulator() as emulator, Mailbox(port) as mailbox:
        modem(theatre, emulator)
        make_due(sent)
        run_queue()
        run_queue()
        stored = messages(sent)
        assert [stored[i].state for i in sent] == ['delivered', 'delivered']
        assert [m['text'] for m in emulator.messages] == [message.text]
        assert [m[3] for m in mails(mailbox)] == [message.text]
        run_queue()
        assert len(emulator.messages) == 1
        assert len(mailbox.received) == 1


def test_mail_addresses():
    "E-mail addresses are checked before a message is queued"
    from his_connector.mail import message_id, valid_address
    from his_connector.endpoint import valid_smtp_url
    assert valid_address(ADDRESS)
    for address in ['', 'orders', 'orders@', '@supplier.cn', 'a b@x.cn',
            'orders@localhost']:
        assert not valid_address(address), address
    assert valid_smtp_url('smtp://mail.hospital.cn:587')
    assert valid_smtp_url('smtps://mail.hospital.cn')
    for url in ['http://mail.hospital.cn', 'smtp://', 'smtp://h:25/x',
            'smtp://h?from=x']:
        assert not valid_smtp_url(url), url
    # one key, one Message-ID: a message delivered twice is one message
    assert message_id('k-1', SENDER) == message_id('k-1', SENDER)
    assert message_id('k-1', SENDER) != message_id('k-2', SENDER)
    assert message_id('k-1', SENDER).endswith('@hospital.example.cn>')
