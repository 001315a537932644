# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""A requisition (领用申请) through the demo desk in headless Chromium.

A cardiology nurse asks for two units of a material the central store holds,
her head nurse approves it from her inbox, the store keeper issues it from
the pick list, and the nurse sees it done.  The administrator sets up (and
afterwards deactivates) the approval rule over JSON-RPC, so the demo site
stays reusable between runs.  Every step is screenshotted into
``test-artifacts/requisition-*.png``."""
import datetime as dt
import uuid
from types import SimpleNamespace

import pytest

from tests.desk import (
    ARTIFACTS, DESK_LANGUAGE, Rpc, active_tab, cell, form_selection, labels,
    login, menu_path, new_page, open_menu_entry, wait_until, xml_id)

pytestmark = [pytest.mark.browser, pytest.mark.no_db]

DEPARTMENT_CODE = 'xnk'
QUANTITY = 2
RULE_PREFIX = "浏览器测试 领用审批"
# The material's lots and certificate must outlive the test comfortably
CERTIFICATE_MARGIN = dt.timedelta(days=60)


def screenshot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f'requisition-{name}.png'))


def pick_material(admin, central_store, company):
    """A goods material the central store holds in lots that are neither
    near expiry nor recalled, with a valid certificate; the one with the
    most stock"""
    # The hospital's day (Asia/Shanghai), as the desk and the stock see it
    context = {'company': company}
    today = admin('model.ir.date.today', context)
    today = dt.date(today['year'], today['month'], today['day'])
    lots = admin('model.stock.lot.search_read', [('quantity', '>', 0)],
        0, None, None,
        ['product', 'quantity', 'hrp_expiry_state', 'hrp_recalled'],
        dict(context, locations=[central_store]))
    stock, refused = {}, set()
    for lot in lots:
        if lot['hrp_expiry_state'] != 'valid' or lot['hrp_recalled']:
            refused.add(lot['product'])
        stock[lot['product']] = stock.get(lot['product'], 0) + lot['quantity']
    candidates = [p for p, q in stock.items()
        if p not in refused and q >= 10 * QUANTITY]
    products = admin('model.product.product.search_read', [
            ('id', 'in', candidates),
            ('type', '=', 'goods'),
            ('high_value', '=', False),
            ('implant', '=', False),
            ('serial_tracked', '=', False),
            ], 0, None, None, ['code', 'rec_name', 'registration_expiry'],
        context)

    def certified(product):
        expiry = product['registration_expiry']
        if not expiry:
            return True
        expiry = dt.date(expiry['year'], expiry['month'], expiry['day'])
        return expiry > today + CERTIFICATE_MARGIN

    products = [p for p in products if p['code'] and certified(p)]
    assert products, "no material in the central store fits the test"
    return max(products, key=lambda p: (stock[p['id']], -p['id']))


def test_requisition_desk_flow(desk, browser):
    users = {u['login']: u for u in desk['info']['logins']}
    admin = Rpc(desk['url'], desk['database'], 'admin',
        users['admin']['password'])
    nurse = users[f'nurse.{DEPARTMENT_CODE}']
    flow = SimpleNamespace(
        desk=desk,
        browser=browser,
        admin=admin,
        nurse=nurse,
        head_nurse=users[f'headnurse.{DEPARTMENT_CODE}'],
        keeper=users['storekeeper'],
        nurse_rpc=Rpc(desk['url'], desk['database'],
            nurse['login'], nurse['password']),
        requisition_menu=menu_path(admin, 'hrp_materials.menu_requisition'),
        inbox_menu=menu_path(admin, 'hrp_materials.menu_approval_inbox'),
        pick_menu=menu_path(admin, 'hrp_materials.menu_pick_list'),
        all_tab=admin('model.ir.action.act_window.domain.read',
            [xml_id(admin, 'hrp_materials.act_requisition_domain_6')],
            ['name'], {'language': DESK_LANGUAGE})[0]['name'],
        state=labels(admin, 'hrp.requisition', 'state'),
        task_state=labels(admin, 'hrp.approval.task', 'state'),
        product=labels(admin, 'hrp.requisition.line', 'product'),
        quantity=labels(admin, 'hrp.requisition.line', 'quantity'),
        shipment=labels(admin, 'stock.move', 'shipment'),
        )
    flow.department, = admin('model.hrp.department.search_read',
        [('name', '=', nurse['department'])], 0, None, None,
        ['company', 'head_nurse', 'store'], {})
    central, = admin('model.stock.location.search_read',
        [('hrp_store_type', '=', 'central')], 0, 1, None, ['id'], {})
    flow.material = pick_material(
        admin, central['id'], flow.department['company'])

    # Rules left by an interrupted run must not decide this one
    stale = admin('model.hrp.approval.rule.search',
        [('name', 'like', RULE_PREFIX + '%')], 0, None, None, {})
    if stale:
        admin('model.hrp.approval.rule.write', stale, {'active': False}, {})
    flow.rule, = admin('model.hrp.approval.rule.create', [{
                'name': f'{RULE_PREFIX} {uuid.uuid4().hex[:8]}',
                'company': flow.department['company'],
                'document': 'hrp.requisition',
                'departments': [('add', [flow.department['id']])],
                'steps': [('create', [{
                                'name': "护士长审批",
                                'approver': 'head_nurse',
                                }])],
                }], {})
    try:
        run_flow(flow)
    finally:
        admin('model.hrp.approval.rule.write', [flow.rule],
            {'active': False}, {})


def run_flow(flow):
    admin, nurse_rpc = flow.admin, flow.nurse_rpc
    department, material = flow.department, flow.material
    last = nurse_rpc('model.hrp.requisition.search', [], 0, 1,
        [('id', 'DESC')], {})
    last_id = last[0] if last else 0

    def created():
        return nurse_rpc('model.hrp.requisition.search_read',
            [('id', '>', last_id)], 0, None, None,
            ['number', 'state', 'approval_state', 'approval_rule',
                'to_location', 'shipments'], {})

    def requisition():
        found = created()
        assert len(found) == 1, found
        return found[0]

    # 1. The nurse asks for the material
    page, errors = new_page(flow.browser)
    try:
        login(page, flow.desk, flow.nurse)
        open_menu_entry(page, flow.requisition_menu)
        tab = active_tab(page)
        tab.locator('nav.toolbar button#new_').click()
        lines = tab.locator('.form-one2many').first
        lines.wait_for()
        lines.locator('button[title="新建"]').click()
        row = lines.locator('table.tree tbody tr').first
        cell(row, flow.product[0]).click()
        product_input = row.locator('input[name="product"]:visible')
        product_input.wait_for()
        assert product_input.get_attribute('readonly') is None, (
            "the material of a new requisition line is read-only")
        page.keyboard.type(material['code'])
        page.locator('li.completion',
            has_text=f"[{material['code']}]").first.click()
        cell(row, flow.quantity[0]).click()
        row.locator('input[name="quantity"]:visible').wait_for()
        page.keyboard.type(str(QUANTITY))
        page.keyboard.press('Tab')
        screenshot(page, '1-nurse-new')
        tab.locator('nav.toolbar button#save').click()
        wait_until(created, message="the requisition was not saved")
        tab.locator('.form button[name="submit"]').click()
        wait_until(lambda: requisition()['state'] == 'submitted',
            message="the requisition was not submitted")
        wait_until(lambda: form_selection(tab, 'state')
            == flow.state[1]['submitted'])
        screenshot(page, '2-nurse-submitted')
        assert not errors, errors
    finally:
        page.close()

    current = requisition()
    number = current['number']
    assert number
    assert current['approval_state'] == 'pending'
    assert current['approval_rule'] == flow.rule
    assert current['to_location'] == department['store']
    task, = admin('model.hrp.approval.task.search_read',
        [('document', '=', f"hrp.requisition,{current['id']}")], 0, None,
        None, ['approver_user', 'state'], {})
    assert task['approver_user'] == department['head_nurse']
    assert task['state'] == 'pending'

    # 2. Her head nurse approves it from her inbox
    page, errors = new_page(flow.browser)
    try:
        login(page, flow.desk, flow.head_nurse)
        open_menu_entry(page, flow.inbox_menu)
        row = active_tab(page).locator('table.tree tbody tr', has_text=number)
        row.wait_for()
        screenshot(page, '3-headnurse-inbox')
        # A list button acts on the selected row: select it, then approve
        state = cell(row, flow.task_state[0])
        state.click()
        row.locator('button[name="approve"]').click()
        wait_until(lambda: requisition()['state'] == 'approved',
            message="the requisition was not approved")
        wait_until(lambda: state.inner_text().strip()
            == flow.task_state[1]['approved'])
        screenshot(page, '4-headnurse-approved')
        assert not errors, errors
    finally:
        page.close()

    current = requisition()
    assert len(current['shipments']) == 1, current
    shipment, = admin('model.stock.shipment.internal.read',
        current['shipments'], ['state'], {})
    assert shipment['state'] == 'assigned', shipment

    # 3. The store keeper issues it from the pick list
    page, errors = new_page(flow.browser)
    try:
        login(page, flow.desk, flow.keeper)
        open_menu_entry(page, flow.pick_menu)
        row = active_tab(page).locator('table.tree tbody tr', has_text=number)
        row.wait_for()
        screenshot(page, '5-storekeeper-pick-list')
        cell(row, flow.shipment[0]).locator('a').click()
        done = active_tab(page).locator('.form button[name="do"]')
        done.wait_for()
        screenshot(page, '6-storekeeper-shipment')
        done.click()
        done.wait_for(state='hidden')
        wait_until(lambda: requisition()['state'] == 'done',
            message="the requisition was not done")
        screenshot(page, '7-storekeeper-issued')
        assert not errors, errors
    finally:
        page.close()

    current = requisition()
    line, = nurse_rpc('model.hrp.requisition.line.search_read',
        [('requisition', '=', current['id'])], 0, None, None,
        ['product', 'issued_quantity', 'reserved_quantity',
            'backorder_quantity'], {})
    assert line['product'] == material['id']
    assert line['issued_quantity'] == QUANTITY
    assert line['reserved_quantity'] == line['backorder_quantity'] == 0
    moves = admin('model.stock.move.search_read',
        [('origin', '=', f"hrp.requisition.line,{line['id']}")], 0, None,
        None, ['state', 'quantity', 'lot', 'lot.hrp_expiry_state'], {})
    assert {m['state'] for m in moves} == {'done'}, moves
    assert sum(m['quantity'] for m in moves) == QUANTITY
    assert all(m['lot.']['hrp_expiry_state'] == 'valid'
        for m in moves if m['lot']), moves

    # 4. The nurse sees her requisition done
    page, errors = new_page(flow.browser)
    try:
        login(page, flow.desk, flow.nurse)
        open_menu_entry(page, flow.requisition_menu)
        tab = active_tab(page)
        tab.locator('ul.nav-tabs').first.get_by_text(
            flow.all_tab, exact=True).click()
        row = tab.locator('table.tree tbody tr', has_text=number)
        row.wait_for()
        wait_until(lambda: cell(row, flow.state[0]).inner_text().strip()
            == flow.state[1]['done'],
            message="the nurse does not see her requisition done")
        row.dblclick()
        wait_until(lambda: tab.locator('.form select[name="state"]').count()
            and form_selection(tab, 'state') == flow.state[1]['done'],
            message="the requisition form does not show it done")
        screenshot(page, '8-nurse-done')
        assert not errors, errors
    finally:
        page.close()
