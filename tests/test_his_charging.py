# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""A usage registration for an inpatient bills the HIS (issue 6, 术后使用登记):
the patient and the surgery are confirmed by the real FHIR test peer
(tests/peers), each line of a mapped material becomes one charge delivered
exactly once through the outbox, cancelling the registration cancels its
charges at the peer; an unknown inpatient, a surgery of another patient and
an unmapped high-value material are refused with nothing changed, and an
unreachable HIS lets the registration through, flagged, its charges
waiting in the outbox.

The documents are committed (the outbox is delivered by queue tasks in
their own transactions, as trytond-worker runs them)."""
import itertools
from decimal import Decimal

import pytest

from his_connector.tests.test_outbox import (
    committed, create_endpoint, deactivate_others, free_port, messages,
    run_queue, settings)
from tests.peers import his_data

INPATIENT = 'ZY2026000101'
SURGERY = 'SS20261101001'
# A surgery of another inpatient (ZY2026000102)
OTHER_SURGERY = 'SS20261102003'
STENT_ITEM = 'C31010001'
_serials = itertools.count(1)


@pytest.fixture(scope='module')
def database():
    from trytond.tests.test_tryton import activate_module, drop_db
    drop_db()
    activate_module(['hrp_materials'])
    with settings(retry_base=30, retry_cap=3600, stale_grace=0,
            batch_size=50):
        yield
    drop_db()


@pytest.fixture(scope='module')
def hospital(database):
    """The cardiology department with its store and nurse, a drug-eluting
    stent (high-value implant, serial-tracked) mapped to the HIS's charge
    item, gauze (not charged) and an implant nobody mapped"""
    from trytond.modules.company.tests import create_company, set_company
    from trytond.pool import Pool

    from hrp_materials.tests.test_consumption import (
        Hospital, create_category, create_product, receive)
    with committed() as transaction:
        company = create_company()
        with set_company(company):
            pool = Pool()
            h = Hospital(company)
            implants = create_category("血管介入类")
            h.stent = create_product(
                "冠脉药物洗脱支架", implants, Decimal('6500'),
                implant=True, serial_tracked=True, lot_required=True)
            h.valve = create_product(
                "人工心脏瓣膜", implants, Decimal('28000'),
                implant=True, serial_tracked=True, lot_required=True)
            receive(company, h.cardio_store, h.gauze, 100)
            endpoint, = pool.get('his.endpoint').create([{
                        'name': "HIS", 'company': company.id,
                        'purpose': 'his', 'kind': 'fhir',
                        'url': 'http://127.0.0.1:9/fhir',
                        'connect_timeout': 1.0, 'read_timeout': 2.0,
                        'max_attempts': 3,
                        }])
            record = his_data.charge_item(STENT_ITEM)
            item, = pool.get('his.charge.item').create([{
                        'company': company.id, 'endpoint': endpoint.id,
                        'code': record.code, 'name': record.name,
                        'unit': record.unit, 'price': record.price,
                        'insurance_code': record.insurance_code,
                        }])
            pool.get('his.product.mapping').create([{
                        'company': company.id, 'product': h.stent.id,
                        'charge_item': item.id, 'unit_factor': 1,
                        }])
            h.item = record
            h.company_id = company.id
        transaction.commit()
    return h


def his_at(hospital, url):
    "Make the company's HIS endpoint the one at url"
    endpoint_id = create_endpoint(
        hospital.company_id, kind='fhir', url=url, read_timeout=2.0)
    deactivate_others(hospital.company_id, 'his', endpoint_id)


@pytest.fixture
def his_up(hospital, fhir_peer):
    run_queue()
    his_at(hospital, fhir_peer.url)
    return fhir_peer


@pytest.fixture
def his_down(hospital):
    run_queue()
    his_at(hospital, f'http://127.0.0.1:{free_port()}/fhir')


def stock_stents(hospital, count, product=None):
    "Receive count serial-numbered units into the cardiology store"
    from trytond.modules.company.tests import set_company
    from trytond.pool import Pool

    from hrp_materials.tests.test_consumption import create_lots, receive
    with committed(hospital.company_id):
        company = Pool().get('company.company')(hospital.company_id)
        product = Pool().get('product.product')(
            (product or hospital.stent).id)
        with set_company(company):
            lots = create_lots(product, *[
                    (f'SN{next(_serials):06d}', None) for _ in range(count)])
            for lot in lots:
                receive(company, hospital.cardio_store, product, 1, lot=lot)
            return [l.id for l in lots]


def register(hospital, lines, inpatient=INPATIENT, surgery=SURGERY):
    """Create a draft registration of lines [(product, quantity, lot id)]
    as the cardiology nurse; return its id"""
    from trytond.pool import Pool

    from hrp_materials.tests.tools import as_user
    with committed(hospital.company_id):
        Consumption = Pool().get('hrp.consumption')
        company = Pool().get('company.company')(hospital.company_id)
        with as_user(hospital.nurse, company):
            consumption, = Consumption.create([{
                        'department': hospital.cardio.id,
                        'store': hospital.cardio_store.id,
                        'kind': 'patient',
                        'inpatient_number': inpatient,
                        'surgery_number': surgery,
                        'lines': [('create', [{
                                        'product': product.id,
                                        'quantity': quantity,
                                        'lot': lot,
                                        } for product, quantity, lot
                                    in lines])],
                        }])
            return consumption.id


def request_as(hospital, user, request):
    """Run request() as user the way the dispatcher runs a request,
    committed; return the UserError raised, if any"""
    from trytond.exceptions import UserError

    from hrp_materials.tests.tools import run_like_dispatcher
    try:
        run_like_dispatcher(user.id, {
                'company': hospital.company_id, '_check_access': True},
            request)
    except UserError as error:
        return error


def act(hospital, method, consumption_id, user=None, **values):
    """Run the button method on the registration as user (by default the
    nurse), after writing values; return the UserError raised, if any"""
    from trytond.pool import Pool

    def request():
        Consumption = Pool().get('hrp.consumption')
        consumption = Consumption(consumption_id)
        if values:
            Consumption.write([consumption], values)
        getattr(Consumption, method)([consumption])
    return request_as(hospital, user or hospital.nurse, request)


def read(consumption_id):
    "The registration and its lines as stored: (values, [line values])"
    from trytond.pool import Pool
    from trytond.tests.test_tryton import DB_NAME
    from trytond.transaction import Transaction
    with Transaction().start(DB_NAME, 0, readonly=True):
        Consumption = Pool().get('hrp.consumption')
        consumption = Consumption(consumption_id)
        lines = [{
                'id': l.id, 'product': l.product.id,
                'lot': l.lot.number if l.lot else None,
                'quantity': l.quantity,
                'his_charge': l.his_charge.id if l.his_charge else None,
                'his_charge_cancel': (
                    l.his_charge_cancel.id if l.his_charge_cancel else None),
                'his_charge_state': l.his_charge_state,
                'move': l.move.id if l.move else None,
                } for l in consumption.lines]
        return {
            'state': consumption.state,
            'patient_name': consumption.patient_name,
            'his_patient_check': consumption.his_patient_check,
            }, lines


def outbox_count():
    from trytond.pool import Pool
    from trytond.tests.test_tryton import DB_NAME
    from trytond.transaction import Transaction
    with Transaction().start(DB_NAME, 0, readonly=True):
        return Pool().get('his.outbox').search_count([])


def key(line):
    return f"hrp.consumption.line-{line['id']}"


def test_look_up_patient(hospital, his_up):
    "The button fills the patient's name from the HIS"
    consumption_id = register(hospital, [(hospital.gauze, 1, None)])
    assert act(hospital, 'look_up_patient', consumption_id) is None
    expected = his_data.expected_patient(INPATIENT)
    values, _ = read(consumption_id)
    assert values['patient_name'] == expected['name']


def test_charges_delivered_once(hospital, his_up):
    """Two stents and gauze for a surgery: the patient is confirmed, each
    stent is charged once at the HIS with its item, price, insurance code
    and serial; the gauze (not mapped) is not charged"""
    lots = stock_stents(hospital, 2)
    consumption_id = register(hospital, [
            (hospital.stent, 1, lots[0]), (hospital.stent, 1, lots[1]),
            (hospital.gauze, 3, None)])
    assert act(hospital, 'done', consumption_id) is None
    values, lines = read(consumption_id)
    assert values['state'] == 'done'
    assert values['his_patient_check'] == 'confirmed'
    stents = [l for l in lines if l['product'] == hospital.stent.id]
    gauze, = [l for l in lines if l['product'] == hospital.gauze.id]
    assert gauze['his_charge'] is None
    assert all(l['his_charge'] and l['his_charge_state'] == 'queued'
        for l in stents), stents

    run_queue()
    run_queue()
    stored = messages([l['his_charge'] for l in stents])
    assert {m.state for m in stored.values()} == {'delivered'}
    for line in stents:
        events = his_up.events('charge', key(line))
        assert len(events) == 1, events
    _, lines = read(consumption_id)
    assert {l['his_charge_state'] for l in lines if l['his_charge']} == {
        'delivered'}
    payload = stored[stents[0]['his_charge']].payload
    for expected in [STENT_ITEM, INPATIENT, SURGERY, stents[0]['lot'],
            hospital.item.insurance_code, str(hospital.item.price)]:
        assert expected in payload, (expected, payload)


def test_cancel_cancels_charges(hospital, his_up):
    "Cancelling the posted registration cancels its charge at the HIS"
    lot, = stock_stents(hospital, 1)
    consumption_id = register(hospital, [(hospital.stent, 1, lot)])
    assert act(hospital, 'done', consumption_id) is None
    run_queue()
    # The head nurse reverses a posted registration
    assert act(hospital, 'cancel', consumption_id, user=hospital.head_nurse,
        cancel_reason="扫错了支架") is None
    values, (line,) = read(consumption_id)
    assert values['state'] == 'cancelled'
    assert line['his_charge_cancel']
    run_queue()
    run_queue()
    assert len(his_up.events('charge', key(line))) == 1
    assert len(his_up.events('cancel', key(line))) == 1
    stored = messages([line['his_charge_cancel']])
    assert stored[line['his_charge_cancel']].state == 'delivered'


@pytest.mark.parametrize('inpatient, surgery, message', [
        ('ZY2099000001', SURGERY, "ZY2099000001"),
        (INPATIENT, OTHER_SURGERY, OTHER_SURGERY),
        ])
def test_unknown_patient_refused(
        hospital, his_up, inpatient, surgery, message):
    """An inpatient the HIS does not know, or a surgery of another patient:
    the posting is refused, nothing is moved or queued"""
    lot, = stock_stents(hospital, 1)
    consumption_id = register(
        hospital, [(hospital.stent, 1, lot)], inpatient=inpatient,
        surgery=surgery)
    before = outbox_count()
    error = act(hospital, 'done', consumption_id)
    assert error is not None and message in error.message, error
    values, (line,) = read(consumption_id)
    assert values['state'] == 'draft'
    assert line['move'] is None and line['his_charge'] is None
    assert outbox_count() == before
    assert his_up.events('charge') == []


def test_unmapped_high_value_refused(hospital, his_up):
    "A high-value material with no HIS charge item is refused"
    lot, = stock_stents(hospital, 1, product=hospital.valve)
    consumption_id = register(hospital, [(hospital.valve, 1, lot)])
    error = act(hospital, 'done', consumption_id)
    assert error is not None and "人工心脏瓣膜" in error.message, error
    values, (line,) = read(consumption_id)
    assert values['state'] == 'draft' and line['move'] is None


def test_his_down_charges_wait(hospital, his_down):
    """The HIS does not answer: the registration is posted and flagged as
    not verified, its charge waits in the outbox"""
    lot, = stock_stents(hospital, 1)
    consumption_id = register(hospital, [(hospital.stent, 1, lot)])
    assert act(hospital, 'done', consumption_id) is None
    values, (line,) = read(consumption_id)
    assert values['state'] == 'done' and line['move']
    assert values['his_patient_check'] == 'unverified'
    run_queue()
    stored = messages([line['his_charge']])[line['his_charge']]
    assert stored.state == 'retrying', stored.state
    assert stored.attempts == 1


def reverse_line(hospital, line_id, reason, user=None):
    """Reverse the consumption line as user (by default the head nurse);
    return the UserError raised, if any"""
    from trytond.pool import Pool

    def request():
        Line = Pool().get('hrp.consumption.line')
        Line.do_cancel([Line(line_id)], reason)
    return request_as(hospital, user or hospital.head_nurse, request)


def test_reverse_wrong_scan(hospital, his_up):
    """A wrongly scanned unit is reversed alone: it returns to the store
    and its charge is cancelled at the HIS, the other unit stays charged;
    a reversed line cannot be reversed again, nor without a reason"""
    lots = stock_stents(hospital, 2)
    consumption_id = register(hospital, [
            (hospital.stent, 1, lots[0]), (hospital.stent, 1, lots[1])])
    assert act(hospital, 'done', consumption_id) is None
    run_queue()
    _, (wrong, kept) = read(consumption_id)
    error = reverse_line(hospital, wrong['id'], " ")
    assert error is not None and "reason" in error.message, error
    assert reverse_line(hospital, wrong['id'], "扫错了一个支架") is None
    error = reverse_line(hospital, wrong['id'], "又一次")
    assert error is not None and "cannot be reversed" in error.message
    values, lines = read(consumption_id)
    assert values['state'] == 'done'
    wrong, kept = lines
    assert wrong['his_charge_cancel'] and not kept['his_charge_cancel']
    run_queue()
    run_queue()
    assert len(his_up.events('cancel', key(wrong))) == 1
    assert his_up.events('cancel', key(kept)) == []
    assert len(his_up.events('charge', key(kept))) == 1
    assert stock_of(hospital, lots[0]) == 1
    assert stock_of(hospital, lots[1]) == 0


def stock_of(hospital, lot_id):
    "The quantity of the lot in the cardiology store"
    from trytond.pool import Pool
    from trytond.tests.test_tryton import DB_NAME
    from trytond.transaction import Transaction

    from hrp_materials.tests.test_consumption import stock
    with Transaction().start(DB_NAME, 0, readonly=True):
        Lot = Pool().get('stock.lot')
        lot = Lot(lot_id)
        return stock(hospital.cardio_store, lot.product, lot)
