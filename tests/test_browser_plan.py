# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""A purchase plan (采购计划) through the demo desk in headless Chromium.

The administrator enters three open purchase requests over JSON-RPC with
the 新建采购申请 wizard: two of a material from a qualified supplier, one of
a second material of the same supplier.  The procurement officer opens
采购计划, creates a plan, collects the requests (one line per material, the
requested quantities summed), changes the quantity to order of the first
line in the editable list, saves and submits the plan.  With no approval
rule for plans it is approved and ordered at once: one purchase for the
supplier, quoted with the edited quantity, the requests linked to its lines;
outside a contract the purchase waits for the leadership's approval.  A plan
that an approval rule holds is approved by the leader over JSON-RPC.

The demo site is reused between runs and holds open requests of its own: a
"parking" plan collects them first over JSON-RPC, so that the officer's plan
collects only the test's requests, and is cancelled at the end, which
releases them.  The requests and plans carry a marker; what an interrupted
run left open (its requests, its unfinished plans) is cancelled.
Screenshots go to ``test-artifacts/plan-*.png``."""
import datetime as dt
import re
import uuid

import pytest
from playwright.sync_api import Error as PlaywrightError

from tests.desk import (
    ARTIFACTS, Rpc, active_tab, approve_pending, cell, form_selection, labels,
    login, menu_path, new_page, open_menu_entry, wait_until, xml_id)
from tests.test_browser_receiving import date, pick_material

pytestmark = [pytest.mark.browser, pytest.mark.no_db]

MARKER = "浏览器测试 采购计划"
# The quantities of the requests, in the materials' purchase units
FIRST_QUANTITIES = [3, 2]
SECOND_QUANTITY = 4
# The quantity the officer orders of the first material
ORDERED = 7


def screenshot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f'plan-{name}.png'))


def number(text):
    "The first number of a cell's text (the unit follows it)"
    found = re.search(r'-?\d[\d,]*(\.\d+)?', text)
    assert found, f"no number in {text!r}"
    return float(found.group(0).replace(',', ''))


def shown(row, string):
    "The number the cell of the list row under the column string shows"
    target = cell(row, string)
    editor = target.locator('input:visible')
    if editor.count():
        return number(editor.first.input_value())
    return number(target.inner_text())


def run_wizard(rpc, name, state, values, context):
    "Run the wizard name: fill its start view with values, press state"
    session, _, _ = rpc(f'wizard.{name}.create', context)
    try:
        return rpc(f'wizard.{name}.execute', session, {'start': values},
            state, context)
    finally:
        rpc(f'wizard.{name}.delete', session, context)


def cancel(rpc, model, ids, context):
    """Cancel the documents with the hrp.document.cancel wizard, run by the
    action their Cancel button runs"""
    if ids:
        action = xml_id(rpc, {
                'hrp.purchase.plan': 'hrp_materials.wizard_document_cancel',
                'purchase.request':
                    'hrp_materials.wizard_purchase_request_cancel',
                }[model])
        run_wizard(rpc, 'hrp.document.cancel', 'cancel',
            {'reason': f"{MARKER}: cleaned up"},
            dict(context, active_model=model, active_id=ids[0],
                active_ids=ids, action_id=action))


def open_requests(admin, context):
    "The requests of the test no purchase took"
    return admin('model.purchase.request.search', [
            ('description', '=', MARKER),
            ('state', '=', 'draft'),
            ('purchase_line', '=', None),
            ], 0, None, None, context)


def clean_up(officer, context, plans_after=0):
    """Cancel the unfinished plans of the test (after the id plans_after),
    which releases their requests, and its open requests"""
    plans = officer('model.hrp.purchase.plan.search', [
            ('id', '>', plans_after),
            ('description', 'like', MARKER + '%'),
            ('state', 'in', ['draft', 'submitted', 'in_approval',
                    'rejected', 'approved']),
            ], 0, None, None, context)
    cancel(officer, 'hrp.purchase.plan', plans, context)
    cancel(officer, 'purchase.request', open_requests(officer, context),
        context)


def park_open_requests(officer, context):
    """A plan holding the open requests of the demo, so that the test's
    plan collects only the test's requests; cancelling it releases them"""
    plan, = officer('model.hrp.purchase.plan.create', [{
                'description': f"{MARKER} (parking)",
                }], context)
    officer('model.hrp.purchase.plan.collect', [plan], context)
    return plan


def second_material(admin, company, today, product, supplier):
    """Another purchasable goods material the supplier is authorised for
    and has a price for, with a valid certificate"""
    context = {'company': company}
    party, = admin('model.party.party.read', [supplier['id']],
        ['hrp_authorised_materials'], context)
    products = admin('model.product.product.search_read', [
            ('template', 'in', party['hrp_authorised_materials']),
            ('template', '!=', product['template']),
            ('template.product_suppliers', 'where', [
                    ('party', '=', supplier['id']),
                    ('prices.quantity', '=', 0),
                    ]),
            ('purchasable', '=', True),
            ('type', '=', 'goods'),
            ], 0, 50, [('id', 'ASC')],
        ['template', 'rec_name', 'code', 'default_uom', 'purchase_uom',
            'registration_expiry'], context)
    for other in products:
        expiry = other['registration_expiry']
        if not expiry or date(expiry) >= today + dt.timedelta(days=30):
            return other
    pytest.fail(f"{supplier['rec_name']} is authorised for one material")


def new_request(admin, context, department, warehouse, product, supplier,
        quantity):
    "Enter an open purchase request with the wizard; return its id"
    result = run_wizard(admin, 'hrp.purchase.request.new', 'create_', {
            'company': context['company'],
            'department': department,
            'product': product['id'],
            'quantity': quantity,
            'unit': product['purchase_uom'] or product['default_uom'],
            'warehouse': warehouse,
            'supplier': supplier['id'],
            'reason': f"{MARKER}\n{uuid.uuid4().hex[:8]}",
            }, context)
    request_id, = result['actions'][0][1]['res_id']
    return request_id


def test_plan_desk_flow(desk, browser):
    users = {u['login']: u for u in desk['info']['logins']}
    admin = Rpc(desk['url'], desk['database'], 'admin',
        users['admin']['password'])
    officer = users['procurement']
    company, = admin('model.company.company.search', [], 0, 1, None, {})
    context = {'company': company}
    today = date(admin('model.ir.date.today', context))
    department, = admin('model.hrp.department.search',
        [('name', '=', officer['department'])], 0, 1, None, context)
    warehouse, = admin('model.stock.location.search',
        [('type', '=', 'warehouse')], 0, 1, [('id', 'ASC')], context)

    officer_rpc = Rpc(desk['url'], desk['database'],
        officer['login'], officer['password'])

    # What an interrupted run left open would be collected with this one's
    clean_up(officer_rpc, context)

    product, supplier = pick_material(admin, company, today)
    product, = admin('model.product.product.read', [product['id']],
        ['template', 'rec_name', 'code', 'default_uom', 'purchase_uom'],
        context)
    other = second_material(admin, company, today, product, supplier)
    last = admin('model.hrp.purchase.plan.search', [], 0, 1,
        [('id', 'DESC')], context)
    last_plan = last[0] if last else 0
    description = f"{MARKER} {uuid.uuid4().hex[:8]}"
    flow = {
        'menu': menu_path(admin, 'hrp_materials.menu_plan'),
        'state': labels(admin, 'hrp.purchase.plan', 'state'),
        'quantity': labels(
            admin, 'hrp.purchase.plan.line', 'quantity')[0],
        'requested': labels(
            admin, 'hrp.purchase.plan.line', 'requested_quantity')[0],
        }

    def created():
        return admin('model.hrp.purchase.plan.search_read', [
                ('id', '>', last_plan),
                ('description', '=', description),
                ], 0, None, None,
            ['state', 'approval_state', 'number', 'lines', 'purchases',
                'request_count', 'collected_by'], context)

    def plan():
        found = wait_until(created, message="the plan is not saved")
        assert len(found) == 1, found
        return found[0]

    def plan_lines():
        return admin('model.hrp.purchase.plan.line.search_read',
            [('plan', '=', plan()['id'])], 0, None, None,
            ['product', 'supplier', 'requested_quantity', 'quantity',
                'unit', 'unit_price', 'requests', 'purchase_line'],
            context)

    try:
        park_open_requests(officer_rpc, context)
        first_requests = [
            new_request(admin, context, department, warehouse, product,
                supplier, quantity)
            for quantity in FIRST_QUANTITIES]
        other_request = new_request(admin, context, department, warehouse,
            other, supplier, SECOND_QUANTITY)
        requests = admin('model.purchase.request.read',
            first_requests + [other_request],
            ['state', 'party', 'purchase_date', 'warehouse', 'quantity'],
            context)
        assert {r['state'] for r in requests} == {'draft'}, requests
        assert {r['party'] for r in requests} == {supplier['id']}, requests
        assert {date(r['purchase_date']) for r in requests} == {today}

        page, errors = new_page(browser)
        try:
            login(page, desk, officer)
            open_menu_entry(page, flow['menu'])
            tab = active_tab(page)
            tab.locator('nav.toolbar button#new_').click()
            description_input = tab.locator(
                '.form input[name="description"]').first
            description_input.wait_for()
            # The default period (today and the next 30 days) takes the
            # requests of today; the defaults arrive after the form shows,
            # and would overwrite a description typed before them
            period_start = tab.locator(
                '.form input[name="period_start"]').first
            wait_until(lambda: period_start.input_value() != '',
                message="the new plan's defaults did not arrive")
            description_input.fill(description)
            # Leaving the field hands its value to the record before the
            # button saves it
            description_input.press('Tab')
            wait_until(
                lambda: description_input.input_value() == description,
                message="the description was not kept")

            # Collecting saves the new plan and fills its lines
            tab.locator('.form button[name="collect"]').click()
            lines = tab.locator('.form-one2many').first.locator(
                'table.tree tbody tr')

            def row(material):
                return lines.filter(has_text=material['code'])

            def fixed_row(material):
                """The row of material, found once: a row being edited
                shows its material in an input, not as text"""
                texts = lines.all_inner_texts()
                index, = [i for i, text in enumerate(texts)
                    if material['code'] in text]
                return lines.nth(index)

            wait_until(lambda: row(product).count() == 1
                and row(other).count() == 1,
                message="the collected lines are not listed")
            first_row = row(product).first
            wait_until(lambda: number(cell(first_row, flow['requested'])
                    .inner_text()) == sum(FIRST_QUANTITIES),
                message="the requested quantities are not summed")
            assert number(cell(first_row, flow['quantity']).inner_text()
                ) == sum(FIRST_QUANTITIES)
            assert number(cell(row(other).first, flow['quantity'])
                .inner_text()) == SECOND_QUANTITY

            def show_quantity(line_row):
                """Scroll the list to the quantity of line_row() (right of
                its visible part); the list may be redrawn meanwhile"""
                def scrolled():
                    try:
                        cell(line_row(), flow['quantity']
                            ).scroll_into_view_if_needed(timeout=2000)
                    except PlaywrightError:
                        return False
                    return True
                wait_until(scrolled, message="the quantity is not shown")

            show_quantity(lambda: row(product).first)
            screenshot(page, '1-collected')

            current = plan()
            assert current['state'] == 'draft'
            collected = {l['product']: l for l in plan_lines()}
            assert set(collected) == {product['id'], other['id']}, collected
            assert sorted(r for l in collected.values()
                for r in l['requests']) == sorted(
                first_requests + [other_request])
            for line in collected.values():
                assert line['supplier'] == supplier['id'], line

            # The officer orders more of the first material
            # A click selects the row, the next one edits the cell
            first_row = fixed_row(product)
            quantity_input = first_row.locator(
                'input[name="quantity"]:visible')
            cell(first_row, flow['quantity']).click()
            if not quantity_input.count():
                cell(first_row, flow['quantity']).click()
            quantity_input.wait_for()
            assert quantity_input.get_attribute('readonly') is None, (
                "the quantity to order of a draft plan's line is read-only")
            quantity_input.fill(str(ORDERED))
            page.keyboard.press('Tab')
            tab.locator('nav.toolbar button#save').click()
            wait_until(lambda: {l['product']: l['quantity']
                    for l in plan_lines()}.get(product['id']) == ORDERED,
                message="the edited quantity was not saved")
            wait_until(lambda: shown(first_row, flow['quantity'])
                == ORDERED,
                message="the list does not show the edited quantity")
            show_quantity(lambda: first_row)
            screenshot(page, '2-edited')

            tab.locator('.form button[name="submit"]').click()
            dialog = page.locator('.modal-dialog:visible')
            wait_until(lambda: dialog.count()
                or plan()['state'] != 'draft',
                message="the plan was not submitted")
            if dialog.count():
                screenshot(page, '3-dialog')
                dialog.locator('button.btn-primary').last.click()
            wait_until(lambda: plan()['state'] != 'draft',
                message="the plan was not submitted")
            wait_until(lambda: form_selection(tab, 'state')
                == flow['state'][1][plan()['state']],
                message="the form does not show the submitted state")
            # Submitting redraws the list
            show_quantity(lambda: row(product).first)
            screenshot(page, '3-submitted')
            assert not errors, errors
        finally:
            page.close()

        current = plan()
        assert current['number']
        if current['approval_state'] == 'pending':
            # An approval rule applies to plans: the leadership approves
            assert current['state'] in {'submitted', 'in_approval'}, current
            approve_pending(desk, users, admin,
                f"hrp.purchase.plan,{current['id']}", context)
            current = plan()
        assert current['approval_state'] == 'approved', current
        assert current['state'] == 'done', current
    finally:
        clean_up(officer_rpc, context, last_plan)

    # One purchase for the supplier, quoted with the ordered quantities
    purchase, = admin('model.purchase.purchase.read', current['purchases'],
        ['party', 'state', 'warehouse', 'comment', 'approval_state',
            'outside_contract', 'lines'], context)
    assert purchase['party'] == supplier['id']
    assert purchase['warehouse'] == warehouse
    assert purchase['state'] == 'quotation', purchase
    assert current['number'] in purchase['comment']
    # Outside a contract the purchase waits for the leadership
    assert purchase['approval_state'] == (
        'pending' if purchase['outside_contract'] else 'approved'), purchase
    purchase_lines = admin('model.purchase.line.read', purchase['lines'],
        ['product', 'quantity', 'unit', 'unit_price'], context)
    by_product = {l['product']: l for l in purchase_lines}
    assert by_product[product['id']]['quantity'] == ORDERED
    assert by_product[product['id']]['unit'] == (
        product['purchase_uom'] or product['default_uom'])
    assert by_product[other['id']]['quantity'] == SECOND_QUANTITY

    lines = {l['product']: l for l in plan_lines()}
    for material, ids in [(product, first_requests),
            (other, [other_request])]:
        line = lines[material['id']]
        assert line['purchase_line'] == by_product[material['id']]['id']
        # at the price the plan was approved with
        assert (by_product[material['id']]['unit_price']
            == line['unit_price']), (line, by_product[material['id']])
        for request in admin('model.purchase.request.read', ids,
                ['state', 'purchase_line'], context):
            assert request['purchase_line'] == line['purchase_line'], request
            assert request['state'] == 'purchased', request
