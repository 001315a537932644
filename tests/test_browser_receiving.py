# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Receiving (验收入库) through the demo desk in headless Chromium, as a
keyboard-wedge scanner does it: each scan is one line of text ending in
Enter.

The administrator orders two boxes of a lot-tracked material with a GTIN
from a qualified supplier over JSON-RPC (quote, confirm, process); the store
keeper opens 验收入库, picks the order, scans the unit's GS1 element string
twice (the scan field has the focus, its on_change adds the line then counts
it), scans a unit with a past expiry (refused with the translated error, no
line added), saves and receives.  Screenshots go to
``test-artifacts/receiving-*.png``."""
import datetime as dt
import time

import pytest

from tests.desk import (
    ARTIFACTS, Rpc, active_tab, approve_pending, form_selection, labels,
    login, menu_path, new_page, open_menu_entry, scan, scan_refused,
    wait_until)

pytestmark = [pytest.mark.browser, pytest.mark.no_db]


def screenshot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f'receiving-{name}.png'))


def date(value):
    return dt.date(value['year'], value['month'], value['day'])


def element_string(gtin, expiry, lot):
    "The GS1 element string a scanner types: lot last, no separator needed"
    return f"01{gtin}17{expiry.strftime('%y%m%d')}10{lot}"


def pick_material(admin, company, today):
    """A purchasable lot-tracked material with a GTIN, not serial-tracked
    nor direct-delivery, with a valid certificate, and a supplier qualified
    for it that has a price for it (whatever the quantity, under contract
    or not)"""
    context = {'company': company}
    products = admin('model.product.product.search_read', [
            ('gtin', '!=', None),
            ('purchasable', '=', True),
            ('serial_tracked', '=', False),
            ('direct_delivery', '=', False),
            ('type', '=', 'goods'),
            ], 0, 200, [('id', 'ASC')],
        ['gtin', 'template', 'rec_name', 'default_uom', 'purchase_uom',
            'registration_expiry'], context)
    for product in products:
        expiry = product['registration_expiry']
        if expiry and date(expiry) < today + dt.timedelta(days=30):
            continue
        suppliers = admin('model.party.party.search_read', [
                ('hrp_authorised_materials', '=', product['template']),
                ('id', 'in', priced_by(admin, product['template'], context)),
                ], 0, None, [('id', 'ASC')],
            ['addresses', 'rec_name', 'licence_state'], context)
        suppliers = [s for s in suppliers
            if s['addresses'] and s['licence_state'] == 'valid']
        if suppliers:
            return product, suppliers[0]
    pytest.fail("the demo has no material with a GTIN and a qualified "
        "supplier")


def priced_by(admin, template, context):
    "The ids of the suppliers with a price for the material template"
    return [s['party'] for s in admin(
            'model.purchase.product_supplier.search_read', [
                ('template', '=', template),
                ('prices.quantity', '=', 0),
                ], 0, None, None, ['party'], context)]


def order(desk, admin, users, company, product, supplier, today):
    """A processing purchase of two purchase units of product: quoted (and
    approved by the leadership when it is outside contract), confirmed and
    processed"""
    context = {'company': company}
    warehouse, = admin('model.stock.location.search',
        [('type', '=', 'warehouse')], 0, 1, None, context)
    purchase, = admin('model.purchase.purchase.create', [{
                'company': company,
                'party': supplier['id'],
                'invoice_address': supplier['addresses'][0],
                'warehouse': warehouse,
                'purchase_date': {'__class__': 'date', 'year': today.year,
                    'month': today.month, 'day': today.day},
                'lines': [('create', [{
                                'product': product['id'],
                                'quantity': 2,
                                'unit': (product['purchase_uom']
                                    or product['default_uom']),
                                'unit_price': {'__class__': 'Decimal',
                                    'decimal': '12.50'},
                                }])],
                }], context)
    admin('model.purchase.purchase.quote', [purchase], context)
    approve_pending(desk, users, admin, f'purchase.purchase,{purchase}',
        context)
    current, = admin('model.purchase.purchase.read', [purchase], ['state'],
        context)
    if current['state'] == 'quotation':
        admin('model.purchase.purchase.confirm', [purchase], context)
    admin('model.purchase.purchase.process', [purchase], context)
    current, = admin('model.purchase.purchase.read', [purchase],
        ['state', 'number'], context)
    assert current['state'] == 'processing', current
    return current


def test_receiving_desk_scan(desk, browser):
    users = {u['login']: u for u in desk['info']['logins']}
    admin = Rpc(desk['url'], desk['database'], 'admin',
        users['admin']['password'])
    keeper = users['storekeeper']
    company, = admin('model.company.company.search', [], 0, 1, None, {})
    context = {'company': company}
    today = date(admin('model.ir.date.today', context))
    product, supplier = pick_material(admin, company, today)
    purchase = order(
        desk, admin, users, company, product, supplier, today)
    receiving_menu = menu_path(admin, 'hrp_materials.menu_receipt')
    state = labels(admin, 'hrp.receipt', 'state')
    expiry = today + dt.timedelta(days=400)
    lot = f'BT{int(time.time()) % 1000000:06d}'
    text = element_string(product['gtin'], expiry, lot)
    expired = element_string(
        product['gtin'], today - dt.timedelta(days=2), lot + 'X')

    last = admin('model.hrp.receipt.search', [], 0, 1, [('id', 'DESC')], {})
    last_id = last[0] if last else 0

    def receipts():
        return admin('model.hrp.receipt.search_read',
            [('id', '>', last_id)], 0, None, None,
            ['state', 'purchase', 'lines', 'received_by'], {})

    page, errors = new_page(browser)
    try:
        login(page, desk, keeper)
        open_menu_entry(page, receiving_menu)
        tab = active_tab(page)
        tab.locator('nav.toolbar button#new_').click()
        purchase_input = tab.locator('.form input[name="purchase"]').first
        purchase_input.wait_for()
        purchase_input.click()
        page.keyboard.type(purchase['number'])
        page.locator('li.completion',
            has_text=purchase['number']).first.click()
        scan_input = tab.locator('.form input[name="scan"]').first
        wait_until(lambda: scan_input.get_attribute('readonly') is None,
            message="the scan field stays read-only")
        lines = tab.locator('.form-one2many table.tree tbody tr')

        def rows():
            return [r for r in lines.all_inner_texts()
                if product['rec_name'].split(']')[-1].strip()[:6] in r]

        # the scanner types each scan and ends it with Enter
        for _ in range(2):
            scan(page, scan_input, text)
        wait_until(lambda: len(rows()) == 1,
            message="the scans did not add one line")
        row = lines.first
        wait_until(lambda: lot in row.inner_text())
        screenshot(page, '1-scanned')

        # an expired unit is refused with the translated message
        dialog = scan_refused(page, scan_input, expired, '过期|expired')
        screenshot(page, '2-refused')
        dialog.locator('button').last.click()
        assert len(rows()) == 1

        tab.locator('nav.toolbar button#save').click()
        found = wait_until(receipts, message="the receipt was not saved")
        receipt, = found
        line, = admin('model.hrp.receipt.line.search_read',
            [('receipt', '=', receipt['id'])], 0, None, None,
            ['product', 'quantity', 'lot_number', 'expiry', 'state'], {})
        assert line['product'] == product['id']
        assert line['quantity'] == 2
        assert line['lot_number'] == lot
        assert date(line['expiry']) == expiry

        tab.locator('.form button[name="receive"]').click()
        confirm = page.locator('.modal-dialog:visible')
        confirm.wait_for()
        confirm.locator('button.btn-primary').last.click()
        wait_until(lambda: receipts()[0]['state'] == 'done',
            message="the receipt was not received")
        wait_until(lambda: form_selection(tab, 'state')
            == state[1]['done'])
        screenshot(page, '3-received')
        assert not errors, errors
    finally:
        page.close()

    received, = receipts()
    assert received['received_by']
    moves = admin('model.stock.move.search_read', [
            ('lot.number', '=', lot),
            ('product', '=', product['id']),
            ], 0, None, None, ['state', 'quantity', 'to_location'], {})
    assert moves and {m['state'] for m in moves} == {'done'}, moves
