# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Load the deterministic hospital of the GNU Health test peer.

Run by the python of the GNU Health virtualenv (trytond 7.0), never by
HRP's own: it imports nothing of HRP.

    HRP_PEER_INTEGRATION_PASSWORD=… python gnuhealth_seed.py CONFIG DATABASE

The database must already exist with health_inpatient, health_surgery and
health_services activated.  The data (see PATIENTS, SURGERIES, PRODUCTS)
is what tests/test_his_gnuhealth.py expects; change both together."""
import datetime as dt
import os
import sys
from decimal import Decimal

# What the integration user gets: read access to admissions (Health
# Nurse), to surgeries (Health Surgery Administration) and the right to
# write service documents and lines (Health Services Administration).
# The second login is a standby HRP server's (and the one the tests try
# with a wrong password, as Tryton delays the next logins of a login that
# failed)
INTEGRATION_LOGINS = ['hrp.integration', 'hrp.standby']
INTEGRATION_GROUPS = [
    ('health', 'group_health_nursing'),
    ('health_surgery', 'group_health_surgery_admin'),
    ('health_services', 'group_health_services_admin'),
    ]

UNITS = [
    # code, name
    ('XNK', '心内科'),
    ('GK', '骨科'),
    ('PTWK', '普通外科'),
    ]
WARDS = [
    # name, unit code
    ('心内科一病区', 'XNK'),
    ('骨科病区', 'GK'),
    ('普外科病区', 'PTWK'),
    ]
BEDS = [
    # name (of the bed and of its product), ward
    ('XNK-01', '心内科一病区'),
    ('XNK-02', '心内科一病区'),
    ('GK-03', '骨科病区'),
    ('PW-05', '普外科病区'),
    ('PW-06', '普外科病区'),
    ]
PROFESSIONALS = [
    # family name, given name, license
    ('李', '明', 'YS-0001'),
    ('王', '刚', 'YS-0002'),
    ]
OPERATING_ROOMS = ['手术室1', '手术室2']
PATIENTS = [
    # puid, family name, given name, gender, date of birth
    ('HRP-P-0001', '张', '三', 'm', dt.date(1960, 3, 15)),
    ('HRP-P-0002', '李', '四', 'f', dt.date(1975, 7, 1)),
    ('HRP-P-0003', '王', '五', 'm', dt.date(1988, 12, 12)),
    ('HRP-P-0004', '赵', '六', 'f', dt.date(1990, 5, 20)),
    ]
REGISTRATIONS = [
    # inpatient number, puid, bed, admitted, expected discharge, state
    ('ZY2025000999', 'HRP-P-0001', 'XNK-02',
        dt.datetime(2025, 6, 1, 8, 0), dt.datetime(2025, 6, 10, 10, 0),
        'finished'),
    ('ZY2026000123', 'HRP-P-0001', 'XNK-01',
        dt.datetime(2026, 11, 2, 0, 30), dt.datetime(2026, 11, 20, 2, 0),
        'hospitalized'),
    ('ZY2026000124', 'HRP-P-0002', 'GK-03',
        dt.datetime(2026, 11, 4, 1, 0), dt.datetime(2026, 11, 25, 2, 0),
        'hospitalized'),
    ('ZY2026000125', 'HRP-P-0003', 'PW-05',
        dt.datetime(2026, 10, 20, 2, 0), dt.datetime(2026, 10, 28, 3, 0),
        'finished'),
    ('ZY2026000126', 'HRP-P-0004', 'PW-06',
        dt.datetime(2026, 11, 6, 2, 0), dt.datetime(2026, 11, 9, 2, 0),
        'cancelled'),
    ]
SURGERIES = [
    # surgery number, puid, date, operating room, surgeon license,
    # description, state
    ('SS2025000100', 'HRP-P-0001', dt.datetime(2025, 6, 3, 1, 0),
        '手术室2', 'YS-0001', '冠状动脉造影术', 'done'),
    ('SS2026000456', 'HRP-P-0001', dt.datetime(2026, 11, 3, 1, 0),
        '手术室1', 'YS-0001', '经皮冠状动脉介入治疗 (PCI)', 'done'),
    ('SS2026000457', 'HRP-P-0002', dt.datetime(2026, 11, 5, 0, 30),
        '手术室2', 'YS-0002', '全髋关节置换术', 'done'),
    ('SS2026000458', 'HRP-P-0002', dt.datetime(2026, 11, 12, 1, 0),
        '手术室2', 'YS-0002', '髋关节置换术后清创', 'confirmed'),
    ]
PRODUCTS = [
    # code, name, type, medical supply, list price, active
    ('C-0001', '冠状动脉支架', 'goods', True, Decimal('12000.00'), True),
    ('C-0002', '人工髋关节', 'goods', True, Decimal('35000.00'), True),
    ('C-0003', '一次性使用输液器', 'goods', True, Decimal('5.50'), True),
    ('S-0001', '手术室使用费', 'service', False, Decimal('800.00'), True),
    ('S-0002', '特级护理', 'service', False, Decimal('120.00'), True),
    ('C-9999', '停用耗材', 'goods', True, Decimal('1.00'), False),
    ]


def main(config_file, database):
    integration_password = os.environ['HRP_PEER_INTEGRATION_PASSWORD']
    from trytond.config import config
    config.update_etc(config_file)
    from trytond.pool import Pool
    from trytond.transaction import Transaction

    Pool.start()
    pool = Pool(database)
    pool.init()
    with Transaction().start(database, 0, readonly=False) as transaction:
        company = seed_company(pool)
        with transaction.set_context(company=company.id):
            seed_hospital(pool, company, integration_password)
        transaction.commit()


def seed_company(pool):
    Currency = pool.get('currency.currency')
    Party = pool.get('party.party')
    Company = pool.get('company.company')
    User = pool.get('res.user')

    cny, = Currency.create([{
                'name': 'Chinese Yuan', 'code': 'CNY', 'symbol': '¥',
                'numeric_code': '156', 'rounding': Decimal('0.01'),
                'digits': 2}])
    party, = Party.create([{
                'name': '示范医院', 'is_institution': True}])
    company, = Company.create([{
                'party': party.id, 'currency': cny.id,
                'timezone': 'Asia/Shanghai'}])
    admin, = User.search([('login', '=', 'admin')])
    User.write([admin], {'companies': [('add', [company.id])],
            'company': company.id})
    return company


def person_name(family, given):
    "The values of a party named the Chinese way: family name first"
    return {
        'name_representation': 'cjk',
        'person_names': [('create', [{
                        'use': 'official', 'family': family,
                        'given': given}])],
        }


def seed_hospital(pool, company, integration_password):
    Party = pool.get('party.party')
    Institution = pool.get('gnuhealth.institution')
    Unit = pool.get('gnuhealth.hospital.unit')
    Ward = pool.get('gnuhealth.hospital.ward')
    Bed = pool.get('gnuhealth.hospital.bed')
    OR = pool.get('gnuhealth.hospital.or')
    Professional = pool.get('gnuhealth.healthprofessional')
    Patient = pool.get('gnuhealth.patient')
    Registration = pool.get('gnuhealth.inpatient.registration')
    Surgery = pool.get('gnuhealth.surgery')
    Template = pool.get('product.template')
    Uom = pool.get('product.uom')
    User = pool.get('res.user')
    ModelData = pool.get('ir.model.data')

    institution, = Institution.create([{
                'party': company.party.id, 'code': 'SFYY',
                'institution_type': 'hospital', 'public_level': 'public'}])
    units = {code: unit for (code, _), unit in zip(UNITS, Unit.create([{
                    'code': code, 'name': name,
                    'institution': institution.id} for code, name in UNITS]))}
    wards = {name: ward for (name, _), ward in zip(WARDS, Ward.create([{
                    'name': name, 'unit': units[unit].id,
                    'institution': institution.id, 'gender': 'unisex'}
                for name, unit in WARDS]))}
    unit_uom, = Uom.search([('symbol', '=', 'u')])
    Template.create([{
                'name': name, 'code': code, 'type': type_,
                'list_price': price, 'default_uom': unit_uom.id,
                'active': active,
                'products': [('create', [{
                                'is_medical_supply': supply,
                                'active': active}])],
                } for code, name, type_, supply, price, active in PRODUCTS])
    bed_templates = Template.create([{
                'name': name, 'type': 'service', 'list_price': Decimal(0),
                'default_uom': unit_uom.id,
                'products': [('create', [{'is_bed': True}])],
                } for name, _ in BEDS])
    beds = {name: bed for (name, _), bed in zip(BEDS, Bed.create([{
                    'product': template.products[0].id,
                    'ward': wards[ward].id, 'institution': institution.id}
                for (_, ward), template in zip(BEDS, bed_templates)]))}
    rooms = {name: room for name, room in zip(OPERATING_ROOMS, OR.create([{
                    'name': name, 'institution': institution.id}
                for name in OPERATING_ROOMS]))}
    surgeons = {}
    for family, given, license_ in PROFESSIONALS:
        party, = Party.create([{
                    'name': given, 'lastname': family, 'is_person': True,
                    'is_healthprof': True, 'gender': 'm',
                    'ref': license_, 'fed_country': 'CHN',
                    'federation_account': 'CHN' + license_,
                    **person_name(family, given)}])
        surgeons[license_], = Professional.create([{
                    'party': party.id, 'code': license_,
                    'institution': institution.id}])
    patients = {}
    for puid, family, given, gender, dob in PATIENTS:
        party, = Party.create([{
                    'name': given, 'lastname': family, 'ref': puid,
                    'fed_country': 'CHN', 'federation_account': 'CHN' + puid,
                    'is_person': True, 'is_patient': True,
                    'gender': gender, 'dob': dob,
                    **person_name(family, given)}])
        patients[puid], = Patient.create([{'party': party.id}])
    for number, puid, bed, admitted, discharge, state in REGISTRATIONS:
        Registration.create([{
                    'name': number, 'patient': patients[puid].id,
                    'bed': beds[bed].id, 'admission_type': 'elective',
                    'hospitalization_date': admitted,
                    'discharge_date': discharge, 'state': state,
                    'discharge_reason': (
                        'home' if state == 'finished' else None),
                    'institution': institution.id}])
    for number, puid, date, room, surgeon, desc, state in SURGERIES:
        Surgery.create([{
                    'code': number, 'patient': patients[puid].id,
                    'surgery_date': date,
                    'surgery_end_date': date + dt.timedelta(hours=2),
                    'operating_room': rooms[room].id,
                    'surgeon': surgeons[surgeon].id,
                    'description': desc, 'state': state,
                    'institution': institution.id}])

    groups = [ModelData.get_id(module, fs_id)
        for module, fs_id in INTEGRATION_GROUPS]
    User.create([{
                'name': f'HRP integration ({login})', 'login': login,
                'password': integration_password,
                'groups': [('add', groups)],
                'companies': [('add', [company.id])],
                'company': company.id} for login in INTEGRATION_LOGINS])


if __name__ == '__main__':
    main(*sys.argv[1:])
