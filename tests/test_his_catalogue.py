# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""The HIS charge catalogue (his.charge.item) imported through HIS
endpoints from the real FHIR and HL7 peers and from GNU Health 5.0."""
import os
from decimal import Decimal

import pytest

from tests.peers import his_data


@pytest.fixture(scope='module')
def database():
    from trytond.tests.test_tryton import activate_module, drop_db
    drop_db()
    activate_module(['his_connector'])
    yield
    drop_db()


@pytest.fixture(scope='module')
def company(database):
    from trytond.modules.company.tests import create_company

    from his_connector.tests.test_chargeitem import call
    return call(lambda: create_company(name="Catalogue Hospital").id)


def run(company, func):
    from his_connector.tests.test_chargeitem import call
    return call(func, company)


def create_endpoint(name, **values):
    from trytond.pool import Pool
    from trytond.transaction import Transaction
    Endpoint = Pool().get('his.endpoint')
    endpoint, = Endpoint.create([{
                'name': name, 'purpose': 'his',
                'company': Transaction().context['company'], **values}])
    return endpoint.id


def catalogue(endpoint_id):
    "The endpoint's charge items, active or not, by code"
    from trytond.pool import Pool
    from trytond.transaction import Transaction
    ChargeItem = Pool().get('his.charge.item')
    with Transaction().set_context(active_test=False):
        return {
            i.code: (i.name, i.unit, i.price, i.insurance_code, i.active)
            for i in ChargeItem.search([('endpoint', '=', endpoint_id)])}


EXPECTED = {
    c.code: (c.name, c.unit, c.price, c.insurance_code, c.active)
    for c in his_data.CHARGE_ITEMS}


def refresh(endpoint_id):
    from trytond.pool import Pool
    pool = Pool()
    sync = pool.get('his.charge.item').refresh_endpoint(
        pool.get('his.endpoint')(endpoint_id))
    return (sync.created, sync.updated, sync.unchanged, sync.deactivated)


def test_fhir_catalogue(company, fhir_peer, monkeypatch):
    from his_connector.exceptions import CredentialError

    endpoint = run(company, lambda: create_endpoint(
            "FHIR HIS", kind='fhir', url=fhir_peer.url,
            credential_env='HRP_CRED_TEST_FHIR_TOKEN', read_timeout=5))
    # The peer asks for a bearer token, read from the environment
    fhir_peer.require_auth(bearer='catalogue-token')
    monkeypatch.delenv('HRP_CRED_TEST_FHIR_TOKEN', raising=False)
    with pytest.raises(CredentialError):
        run(company, lambda: refresh(endpoint))
    monkeypatch.setenv('HRP_CRED_TEST_FHIR_TOKEN', 'catalogue-token')

    assert run(company, lambda: refresh(endpoint)) == (
        len(EXPECTED), 0, 0, 0)
    assert run(company, lambda: catalogue(endpoint)) == EXPECTED
    # Again: nothing changes
    assert run(company, lambda: refresh(endpoint)) == (
        0, 0, len(EXPECTED), 0)


def test_hl7_catalogue(company, hl7_peer):
    endpoint = run(company, lambda: create_endpoint(
            "HL7 HIS", kind='hl7_mllp',
            url=hl7_peer.url, read_timeout=5))
    assert run(company, lambda: refresh(endpoint))[0] == len(EXPECTED)
    assert run(company, lambda: catalogue(endpoint)) == EXPECTED


def test_scheduled_refresh(company, fhir_peer, hl7_peer, monkeypatch):
    "The job refreshes every HIS; one that fails does not stop the others"
    from trytond.pool import Pool

    fhir = run(company, lambda: create_endpoint(
            "FHIR HIS (job)", kind='fhir', url=fhir_peer.url,
            read_timeout=5))
    hl7 = run(company, lambda: create_endpoint(
            "HL7 HIS (job)", kind='hl7_mllp', url=hl7_peer.url,
            read_timeout=5))
    fhir_peer.fault('error', count=10, match='GET ChargeItemDefinition')

    def job():
        pool = Pool()
        pool.get('his.charge.item').refresh_catalogues()
        Sync = pool.get('his.charge.item.sync')
        return {
            e: Sync.search([('endpoint', '=', e)], count=True)
            for e in [fhir, hl7]}
    assert run(company, job) == {fhir: 0, hl7: 1}
    assert run(company, lambda: catalogue(hl7)) == EXPECTED


@pytest.mark.slow
def test_gnuhealth_catalogue(company, gnuhealth_peer, monkeypatch):
    monkeypatch.setenv('HRP_CRED_TEST_GNUHEALTH', gnuhealth_peer.password)
    endpoint = run(company, lambda: create_endpoint(
            "GNU Health", kind='gnuhealth', url=gnuhealth_peer.url,
            database=gnuhealth_peer.database,
            username=gnuhealth_peer.login,
            credential_env='HRP_CRED_TEST_GNUHEALTH', read_timeout=20))
    assert run(company, lambda: refresh(endpoint))[0] == 6
    items = run(company, lambda: catalogue(endpoint))
    assert sorted(items) == [
        'C-0001', 'C-0002', 'C-0003', 'C-9999', 'S-0001', 'S-0002']
    assert items['C-0001'] == (
        '冠状动脉支架', 'u', Decimal('12000.00'), None, True)
    assert [c for c, i in items.items() if not i[4]] == ['C-9999']
    assert os.environ['HRP_CRED_TEST_GNUHEALTH'] not in repr(items)
