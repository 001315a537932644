# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""The demo hospital (fixtures/): what it holds, that it is deterministic and
that department users see only their own department."""
import datetime as dt
import re
from collections import Counter
from decimal import Decimal

import pytest

from hrp import DEMO_SEED as SEED, MODULES


@pytest.fixture(scope='module')
def demo():
    "Activate the modules in a fresh test database and load the demo"
    from trytond.tests.test_tryton import DB_NAME, activate_module, drop_db

    from hrp.fixtures import build_hospital, load_demo_hospital_into

    drop_db()
    activate_module(MODULES)
    summary = load_demo_hospital_into(DB_NAME, seed=SEED)
    yield {
        'db': DB_NAME,
        'summary': summary,
        'data': build_hospital(SEED),
        }
    drop_db()


@pytest.fixture
def tx(demo):
    "A root transaction on the demo database, rolled back afterwards"
    from trytond.pool import Pool
    from trytond.transaction import Transaction
    with Transaction().start(demo['db'], 0) as transaction:
        Company = Pool().get('company.company')
        company, = Company.search([])
        with transaction.set_context(
                company=company.id, companies=[company.id]):
            yield Pool()
        transaction.rollback()


def xml_id(pool, module, name):
    return pool.get('ir.model.data').get_id(module, name)


# -- without a database -------------------------------------------------------

def test_same_seed_same_hospital():
    "The generator is deterministic and the seed matters"
    from hrp.fixtures import build_hospital, digest
    first, second = build_hospital(SEED), build_hospital(SEED)
    assert digest(first) == digest(second)
    assert [m['gtin'] for m in first['materials']] == [
        m['gtin'] for m in second['materials']]
    other = build_hospital(SEED + 1)
    assert digest(other) != digest(first)
    assert ([m['gtin'] for m in other['materials']]
        != [m['gtin'] for m in first['materials']])


def test_generated_codes_are_valid():
    "GTIN-13 (China 690-699), 统一社会信用代码 and 医保编码 are well formed"
    from stdnum import ean
    from stdnum.cn import uscc

    from hrp.fixtures import build_hospital
    data = build_hospital(SEED)
    gtins = [m['gtin'] for m in data['materials']]
    assert len(gtins) == len(set(gtins))
    for gtin in gtins:
        assert len(gtin) == 13 and ean.is_valid(gtin), gtin
        assert 690 <= int(gtin[:3]) <= 699, gtin
    codes = [data['company']['uscc']] + [s['uscc'] for s in data['suppliers']]
    codes += [m['uscc'] for m in data['manufacturers'] if m['uscc']]
    for code in codes:
        assert uscc.is_valid(code), code
    insurance = re.compile(r'^C\d{26}$')
    for material in data['materials']:
        if material['insured']:
            assert insurance.match(material['insurance_code'])
            assert material['chargeable']
        if material['registration_number']:
            assert re.match(
                r'^(国械注[准进]|[\u4e00-\u9fff]械注准)20\d{2}[23]\d{6}$',
                material['registration_number']), material


# -- the loaded hospital ------------------------------------------------------

def test_summary(demo):
    summary = demo['summary']
    logins = summary['logins']
    assert 'admin' not in {l['login'] for l in logins}
    assert {l['password'] for l in logins} == {'HrpDemo2026!'}
    roles = Counter(l['role'] for l in logins)
    assert roles['nurse'] >= 30
    assert roles['nurse'] == roles['head_nurse'] == roles['director']
    for role in ['store_keeper', 'procurement', 'finance',
            'equipment_engineer', 'leadership', 'integration']:
        assert roles[role] == 1, role
    assert {'nurse.xnk', 'headnurse.xnk', 'director.xnk', 'storekeeper',
        'his.integration'} <= {l['login'] for l in logins}
    assert summary['materials'] >= 1000
    assert summary['implants'] >= 100
    assert summary['suppliers'] >= 20
    assert summary['equipment'] >= 20


def test_company(tx):
    pool = tx
    Company = pool.get('company.company')
    User = pool.get('res.user')
    company, = Company.search([])
    assert company.party.name == "江城市第一人民医院"
    assert company.currency.code == 'CNY'
    assert company.currency.symbol == '¥'
    assert company.currency.digits == 2
    admin = User(xml_id(pool, 'res', 'user_admin'))
    assert admin.company == company
    users = User.search([('login', 'not in', ['root', 'admin'])])
    assert users and all(u.company == company for u in users)


def test_departments_and_stores(tx):
    pool = tx
    Department = pool.get('hrp.department')
    Location = pool.get('stock.location')
    warehouse = Location(xml_id(pool, 'stock', 'location_warehouse'))
    assert warehouse.name == "医院中心库"
    assert warehouse.storage_location.hrp_store_type == 'central'
    departments = Department.search([])
    assert len(departments) >= 30
    assert {d.type for d in departments} == {
        'clinical', 'medical_technical', 'operating_theatre', 'icu',
        'emergency', 'administrative'}
    for department in departments:
        assert department.store, department.rec_name
        assert department.store.hrp_store_type == 'department'
        assert department.store.type == 'storage'
        assert department.store.warehouse == warehouse
        assert department.cost_center.type == 'normal'
        if department.type != 'administrative':
            assert department.head_nurse and department.director
            assert department.head_nurse in department.members
            assert department.director in department.members
    high_value = Location.search([('hrp_store_type', '=', 'high_value')])
    assert {s.hrp_department.code for s in high_value} == {'SSS', 'JRDGS'}
    names = {d.name for d in departments}
    for name in ["心内科", "骨科", "手术室", "介入导管室", "重症医学科", "检验科",
            "放射科", "设备科", "财务科"]:
        assert name in names


def test_users_and_roles(tx):
    pool = tx
    User = pool.get('res.user')
    Department = pool.get('hrp.department')
    everything = {xml_id(pool, 'hrp_materials', g) for g in [
            'group_hrp_admin', 'group_store_keeper', 'group_procurement',
            'group_finance', 'group_leadership', 'group_integration']}
    for prefix, group in [('nurse.', 'group_nurse'),
            ('headnurse.', 'group_head_nurse'),
            ('director.', 'group_director')]:
        users = User.search([('login', 'like', prefix + '%')])
        assert len(users) >= 30
        for user in users:
            groups = {g.id for g in user.groups}
            assert groups == {xml_id(pool, 'hrp_materials', group)}, (
                user.login)
            assert not groups & everything
            assert len(user.hrp_departments) == 1
            code = user.login.split('.', 1)[1].upper()
            assert user.hrp_departments[0].code == code
    cardiology, = Department.search([('code', '=', 'XNK')])
    assert cardiology.head_nurse.login == 'headnurse.xnk'
    assert cardiology.director.login == 'director.xnk'
    engineer, = User.search([('login', '=', 'engineer')])
    assert xml_id(pool, 'hrp_equipment', 'group_equipment_engineer') in {
        g.id for g in engineer.groups}
    keeper, = User.search([('login', '=', 'storekeeper')])
    assert xml_id(pool, 'hrp_materials', 'group_store_keeper') in {
        g.id for g in keeper.groups}
    # every demo user logs in with the one documented password
    for login in ['nurse.xnk', 'director.gk', 'storekeeper', 'leader']:
        assert User.get_login(login, {'password': 'HrpDemo2026!'}), login
    assert not User.get_login('nurse.xnk', {'password': 'wrong'})


def test_materials(tx, demo):
    from stdnum import ean
    from trytond.transaction import Transaction
    pool = tx
    Template = pool.get('product.template')
    Identifier = pool.get('product.identifier')
    Category = pool.get('product.category')
    templates = Template.search([('type', '=', 'goods')])
    assert len(templates) >= 1000
    identifiers = Identifier.search([('type', '=', 'ean')])
    codes = [i.code for i in identifiers]
    assert len(codes) >= 1000
    assert len(codes) == len(set(codes))
    for code in codes:
        assert len(code) == 14 and ean.is_valid(code), code
        assert code[:4] in {f'0{p}' for p in range(690, 700)}, code
    # the database holds what the generator built, in the same order
    assert sorted(codes) == sorted(
        '0' + m['gtin'] for m in demo['data']['materials'])
    roots = {c.name for c in Category.search([('parent', '=', None)])}
    assert {"耗材", "高值耗材", "试剂", "办公用品"} <= roots
    assert len(Category.search([('parent', '!=', None)])) >= 15

    today = pool.get('ir.date').today()
    insurance = re.compile(r'^C\d{26}$')
    active = [t for t in templates if t.active]
    assert any(t.insured for t in active)
    for template in active:
        assert template.manufacturer
        assert template.categories
        assert template.cost_price and template.cost_price > 0
        if template.insured:
            assert insurance.match(template.insurance_code)
        if template.registration_number:
            assert template.registration_expiry >= today
        if template.lot_required:
            assert tuple(template.lot_required) == ('storage',)
            assert template.expiration_time > 0
    with Transaction().set_context(active_test=False):
        inactive = Template.search([('active', '=', False)])
    assert len(inactive) == 1
    assert inactive[0].registration_expiry < today
    # purchase in boxes, issue in units
    syringe, = Template.search([('code', '=', 'HC010001')])
    assert syringe.purchase_uom.name == "盒(100)"
    assert syringe.issue_per_purchase_unit == 100


def test_implants(tx):
    pool = tx
    Template = pool.get('product.template')
    implants = Template.search([('implant', '=', True)])
    assert len(implants) >= 100
    high_value = set(Template.search([('high_value', '=', True)]))
    assert set(implants) <= high_value
    assert all(t.high_value for t in implants)
    assert all(t.serial_tracked for t in implants)
    assert all(t.registration_number for t in implants)
    names = {t.name for t in implants}
    for name in ["冠状动脉药物洗脱支架系统", "植入式心脏起搏器",
            "人工髋关节假体 股骨柄", "人工膝关节假体 股骨髁", "锁定接骨板",
            "椎弓根螺钉", "折叠式人工晶状体"]:
        assert name in names
    # high-value by price without being implants (staplers ...)
    assert any(t.name.endswith("吻合器") for t in high_value - set(implants))


def test_suppliers(tx):
    pool = tx
    Party = pool.get('party.party')
    Licence = pool.get('hrp.supplier.licence')
    suppliers = Party.search([('hrp_licences', '!=', None)])
    assert len(suppliers) >= 20
    for supplier in suppliers:
        assert 2 <= len(supplier.hrp_licences) <= 3
        assert {l.type for l in supplier.hrp_licences} >= {'business'}
        assert supplier.hrp_authorised_materials
        assert re.match(r'^\+861[3-9]\d{9}$', supplier.sms_number)
    assert len(Licence.search([('state', '=', 'expiring')])) >= 3
    assert len(Licence.search([('state', '=', 'expired')])) >= 1
    states = Counter(s.licence_state for s in suppliers)
    assert states['valid'] and states['expiring'] and states['expired']
    # every active material can be bought from a supplier authorised for it
    Template = pool.get('product.template')
    for template in Template.search([('type', '=', 'goods')]):
        assert template.product_suppliers
        supplier = template.product_suppliers[0].party
        assert template in supplier.hrp_authorised_materials


def test_equipment(tx):
    from trytond.transaction import Transaction
    pool = tx
    Equipment = pool.get('hrp.equipment')
    with Transaction().set_context(active_test=False):
        equipment = Equipment.search([], order=[('code', 'ASC')])
    assert len(equipment) >= 20
    assert {'ct', 'mri', 'pet_ct', 'dsa', 'dr', 'ultrasound',
        'linear_accelerator'} <= {e.category for e in equipment}
    today = pool.get('ir.date').today()
    for item in equipment:
        assert item.department and item.manufacturer and item.serial_number
        assert item.purchase_cost > 0
        assert item.commissioning_date < today
    statuses = Counter(e.status for e in equipment)
    assert statuses['in_use'] >= 20
    assert statuses['under_repair'] and statuses['scrapped']
    for item in equipment:
        if item.status != 'in_use':
            assert item.status_changes[-1].to_status == item.status
    departments = {e.department.code for e in equipment if e.category in {
            'ct', 'mri', 'dr'}}
    assert 'FSK' in departments


def test_equipment_scores(tx, demo):
    """The imaging devices are scored for each of the last twelve months
    from their PACS usage and HIS revenue, as the monthly job does"""
    pool = tx
    Score = pool.get('hrp.equipment.score')
    Usage = pool.get('hrp.equipment.usage')
    today = pool.get('ir.date').today()
    scores = Score.search([])
    assert len(scores) == demo['summary']['equipment_scores']
    months = sorted({s.month for s in scores})
    assert len(months) == 12
    assert months[-1] == (today.replace(day=1) - dt.timedelta(days=1)
        ).replace(day=1)
    devices = {s.equipment for s in scores}
    assert len(scores) == 12 * len(devices)
    assert {'ct', 'mri', 'dsa'} <= {d.category for d in devices}
    for score in scores:
        assert sum(l.weighted for l in score.lines) == score.composite
        assert sum(l.weight for l in score.lines) == 100
        assert 0 <= score.composite <= 100
    last = [s for s in scores if s.month == months[-1]]
    for category in {s.category for s in last}:
        ranks = sorted(s.rank for s in last if s.category == category)
        assert ranks == list(range(1, len(ranks) + 1))
    # the device idle in the register is flagged idle or under-used
    idle = [s for s in last if s.equipment.status == 'idle']
    assert idle and all(s.under_used or s.idle for s in idle)
    busy = [u for u in Usage.search([('month', '=', months[-1])])
        if u.exams]
    assert busy and all(u.revenue > 0 for u in busy)


def test_opening_stock(tx):
    from trytond.transaction import Transaction
    pool = tx
    Product = pool.get('product.product')
    Location = pool.get('stock.location')
    Lot = pool.get('stock.lot')
    Inventory = pool.get('stock.inventory')
    Move = pool.get('stock.move')
    inventories = Inventory.search([])
    assert inventories and all(i.state == 'done' for i in inventories)
    # only the demo purchase's moves wait (for receipt), and the
    # replenishment requests' (see test_replenishment_requests)
    assert not Move.search([
            ('state', '!=', 'done'),
            ('origin', 'not like', 'purchase.line,%'),
            ('origin', 'not like', 'stock.order_point,%'),
            ])

    today = pool.get('ir.date').today()
    central, = Location.search([('hrp_store_type', '=', 'central')])
    stores = Location.search([('hrp_store_type', '=', 'department')])
    high_value = Location.search([('hrp_store_type', '=', 'high_value')])
    location_ids = [central.id] + [s.id for s in stores + high_value]
    with Transaction().set_context(stock_date_end=today):
        quantities = Product.products_by_location(
            location_ids, grouping=('product', 'lot'))
    by_location = Counter()
    with_lot = Counter()
    for (location_id, product_id, lot_id), quantity in quantities.items():
        if quantity:
            assert quantity > 0
            by_location[location_id] += 1
            if lot_id:
                with_lot[location_id] += 1
    assert by_location[central.id] >= 300
    assert with_lot[central.id] >= 200
    stocked = [s for s in stores if by_location[s.id]]
    assert len(stocked) == len(stores)
    assert sum(1 for s in stores if with_lot[s.id]) >= 30
    for store in high_value:
        assert with_lot[store.id] >= 20
    # implants are serial-tracked: one unit per lot
    for (location_id, product_id, lot_id), quantity in quantities.items():
        if location_id in {s.id for s in high_value} and quantity:
            product = Product(product_id)
            if product.serial_tracked:
                assert quantity == 1
    # lots with expiry dates, some close to expiry, none expired
    lots = Lot.search([])
    assert len(lots) >= 500
    assert all(l.expiration_date for l in lots)
    assert all(l.expiration_date >= today for l in lots)
    near = [l for l in lots
        if l.expiration_date <= today + dt.timedelta(days=60)]
    assert len(near) >= 10


def test_nurse_sees_only_her_department(demo):
    from trytond.model.exceptions import AccessError
    from trytond.pool import Pool
    from trytond.transaction import Transaction
    with Transaction().start(demo['db'], 0) as transaction:
        pool = Pool()
        User = pool.get('res.user')
        Department = pool.get('hrp.department')
        Location = pool.get('stock.location')
        nurse, = User.search([('login', '=', 'nurse.xnk')])
        keeper, = User.search([('login', '=', 'storekeeper')])
        cardiology, = Department.search([('code', '=', 'XNK')])
        orthopaedics, = Department.search([('code', '=', 'GK')])
        all_stores = Location.search([
                ('hrp_store_type', 'in', ['department', 'high_value'])])
        context = {'company': nurse.company.id,
            'companies': [nurse.company.id]}
        with transaction.set_user(nurse.id), \
                transaction.set_context(context, _check_access=True):
            assert Department.search([]) == [cardiology]
            stores = Location.search([
                    ('hrp_store_type', 'in', ['department', 'high_value'])])
            assert stores == [cardiology.store]
            assert orthopaedics.store not in Location.search([])
            with pytest.raises(AccessError):
                Location.read([orthopaedics.store.id], ['name'])
        with transaction.set_user(keeper.id), \
                transaction.set_context(context, _check_access=True):
            assert set(Location.search([
                        ('hrp_store_type', 'in',
                            ['department', 'high_value'])])) == set(
                all_stores)
        transaction.rollback()


# -- procurement --------------------------------------------------------------

def test_contracts(tx, demo):
    pool = tx
    Contract = pool.get('hrp.contract')
    Party = pool.get('party.party')
    Uom = pool.get('product.uom')
    today = pool.get('ir.date').today()
    contracts = Contract.search([])
    assert len(contracts) >= 12
    assert len(contracts) == demo['summary']['contracts']
    suppliers = Party.search([('hrp_licences.type', '=', 'device_trading')])
    qualified = [s for s in suppliers if not any(
            not l.is_valid(today) for l in s.hrp_licences)]
    # most qualified suppliers have their contract, one each
    assert len({c.supplier for c in contracts}) == len(contracts)
    assert len(contracts) >= len(qualified) * 3 // 4
    for contract in contracts:
        assert contract.state == 'active'
        assert contract.number and contract.activated_at
        assert contract.start_date < today <= contract.end_date
        assert contract.end_date <= today + dt.timedelta(days=2 * 365)
        assert len(contract.lines) >= 8
        for line in contract.lines:
            assert contract.supplier.is_qualified_for(
                line.product.template, today), line.rec_name
            assert line.unit == (line.product.purchase_uom
                or line.product.default_uom)
            # a little under the cost price (per purchase unit)
            price = Uom.compute_price(line.product.default_uom,
                line.product.cost_price, line.unit)
            assert price * Decimal('0.85') <= line.unit_price < price
    assert any(c.end_date <= today + dt.timedelta(days=30)
        for c in contracts)
    assert any(l.quantity_ceiling for c in contracts for l in c.lines)
    assert any(l.quantity_ceiling is None for c in contracts for l in c.lines)


def test_order_points(tx):
    pool = tx
    OrderPoint = pool.get('stock.order_point')
    Location = pool.get('stock.location')
    Replenishment = pool.get('hrp.replenishment')
    warehouse = Location(xml_id(pool, 'stock', 'location_warehouse'))
    # the replenishment parameters computed from the consumption history
    # own the order points of their stores and materials
    owned = {r.order_point for r in Replenishment.search([])} - {None}
    assert owned
    points = [p for p in OrderPoint.search([]) if p not in owned]
    assert 24 <= len(points) <= 60
    for point in points:
        assert point.type == 'purchase'
        assert point.location == warehouse
        assert 0 < point.min_quantity < point.target_quantity
        assert point.product.template.categories[0].code.startswith('HC')


def test_replenishment_requests(tx, demo):
    pool = tx
    Shipment = pool.get('stock.shipment.internal')
    OrderPoint = pool.get('stock.order_point')
    # the department stores short of a material ask the central store
    shipments = Shipment.search([('state', '=', 'request')])
    assert len(shipments) == demo['summary']['replenishment_requests'] >= 3
    for shipment in shipments:
        assert shipment.from_location.hrp_store_type == 'central'
        assert shipment.to_location.hrp_store_type in {
            'department', 'high_value'}
        assert shipment.moves
        for move in shipment.moves:
            assert isinstance(move.origin, OrderPoint)
            assert move.origin.location == shipment.to_location
            assert move.origin.product == move.product
            assert 0 < move.quantity <= move.origin.target_quantity
            assert move.state == 'draft'


def test_open_purchase_requests(demo):
    from trytond.pool import Pool
    from trytond.transaction import Transaction
    # collecting locks the requests' table, as the dispatcher would
    with Transaction().start(demo['db'], 0,
            _lock_tables=['purchase_request']) as transaction:
        pool = Pool()
        Company = pool.get('company.company')
        Request = pool.get('purchase.request')
        Plan = pool.get('hrp.purchase.plan')
        company, = Company.search([])
        with transaction.set_context(
                company=company.id, companies=[company.id]):
            requests = Request.search([
                    ('state', '=', 'draft'), ('hrp_source', '=', 'manual')])
            assert len(requests) >= 5
            for request in requests:
                assert request.hrp_department and request.hrp_reason
                assert request.warehouse and request.quantity > 0
            assert any(r.party for r in requests)
            assert any(not r.party for r in requests)
            # the procurement officer's new plan collects them
            plan, = Plan.create([{}])
            Plan.collect([plan])
            plan = Plan(plan.id)
            assert plan.request_count == len(requests)
            assert {r for l in plan.lines for r in l.requests} == set(
                requests)
        transaction.rollback()


def test_purchase_awaiting_receipt(tx):
    pool = tx
    Purchase = pool.get('purchase.purchase')
    purchases = Purchase.search([('state', '=', 'processing')])
    assert len(purchases) == 1
    purchase, = purchases
    assert purchase.approval_state == 'approved'
    assert not purchase.outside_contract
    assert purchase.party.is_qualified_for(
        purchase.lines[0].product.template)
    for line in purchase.lines:
        assert line.hrp_contract_line
        assert line.unit_price == line.hrp_contract_line.unit_price
        assert line.moves and all(
            m.state == 'draft' and not m.shipment for m in line.moves)
