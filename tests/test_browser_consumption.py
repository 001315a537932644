# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""The nurse's usage registration (使用登记) through the demo desk in
headless Chromium, as a keyboard-wedge scanner does it: each scan is one
line of text ending in Enter.

The administrator puts three units of a new lot of a lot-tracked material
into the nurse's department store over JSON-RPC. The nurse opens 使用登记,
creates a daily (bulk) registration, scans the unit's GS1 element string
twice (the scan field has the focus, its on_change adds the line then
counts it), scans a lot that was never received (refused with the
translated error, no line added), saves and posts: two units leave the
store. Screenshots go to ``test-artifacts/consumption-*.png``."""
import datetime as dt
import time

import pytest

from tests.desk import (
    ARTIFACTS, Rpc, active_tab, form_selection, labels, login, menu_path,
    new_page, open_menu_entry, scan, scan_refused, wait_until)
from tests.test_browser_receiving import date, element_string

pytestmark = [pytest.mark.browser, pytest.mark.no_db]


def screenshot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f'consumption-{name}.png'))


def dump(value):
    return {'__class__': 'date', 'year': value.year, 'month': value.month,
        'day': value.day}


def stock_lot(admin, company, store, today):
    """Put three units of a new lot of a lot-tracked material with a GTIN
    (not serial-tracked) into store; return (product, lot number)"""
    context = {'company': company}
    products = admin('model.product.product.search_read', [
            ('gtin', '!=', None),
            ('serial_tracked', '=', False),
            ('type', '=', 'goods'),
            ('active', '=', True),
            ], 0, 50, [('id', 'ASC')],
        ['gtin', 'rec_name', 'default_uom', 'registration_expiry'], context)
    products = [p for p in products if not p['registration_expiry']
        or date(p['registration_expiry']) > today]
    assert products, "the demo has no lot-tracked material with a GTIN"
    product = products[0]
    number = f'BC{int(time.time()) % 1000000:06d}'
    expiry = today + dt.timedelta(days=400)
    lot, = admin('model.stock.lot.create', [{
                'product': product['id'], 'number': number,
                'shelf_life_expiration_date': dump(expiry),
                'expiration_date': dump(expiry),
                }], context)
    lost_found, = admin('model.stock.location.search',
        [('type', '=', 'lost_found')], 0, 1, None, context)
    move, = admin('model.stock.move.create', [{
                'product': product['id'], 'unit': product['default_uom'],
                'quantity': 3, 'lot': lot, 'company': company,
                'from_location': lost_found, 'to_location': store,
                'effective_date': dump(today),
                }], context)
    admin('model.stock.move.do', [move], context)
    return product, number, expiry


def test_consumption_desk_scan(desk, browser):
    users = {u['login']: u for u in desk['info']['logins']}
    admin = Rpc(desk['url'], desk['database'], 'admin',
        users['admin']['password'])
    nurse_login = next(l for l in sorted(users) if l.startswith('nurse.'))
    nurse = users[nurse_login]
    as_nurse = Rpc(desk['url'], desk['database'], nurse_login,
        nurse['password'])
    company, = admin('model.company.company.search', [], 0, 1, None, {})
    context = {'company': company}
    today = date(admin('model.ir.date.today', context))
    defaults = as_nurse('model.hrp.consumption.default_get',
        ['department', 'store'], context)
    store = defaults['store']
    assert store, f"{nurse_login} has no department store"
    product, lot, expiry = stock_lot(admin, company, store, today)
    text = element_string(product['gtin'], expiry, lot)
    unknown = element_string(product['gtin'], expiry, lot + 'X')
    menu = menu_path(admin, 'hrp_materials.menu_consumption')
    kinds = labels(admin, 'hrp.consumption', 'kind')
    state = labels(admin, 'hrp.consumption', 'state')

    last = admin('model.hrp.consumption.search', [], 0, 1,
        [('id', 'DESC')], {})
    last_id = last[0] if last else 0

    def registrations():
        return admin('model.hrp.consumption.search_read',
            [('id', '>', last_id)], 0, None, None,
            ['state', 'kind', 'lines', 'done_by'], {})

    def stock():
        lots = admin('model.stock.lot.search_read',
            [('number', '=', lot)], 0, 1, None, ['quantity'],
            {**context, 'locations': [store]})
        return lots[0]['quantity']

    page, errors = new_page(browser)
    try:
        login(page, desk, nurse)
        open_menu_entry(page, menu)
        tab = active_tab(page)
        tab.locator('nav.toolbar button#new_').click()
        kind = tab.locator('.form select[name="kind"]').first
        kind.wait_for()
        kind.select_option(label=kinds[1]['bulk'])
        scan_input = tab.locator('.form input[name="scan"]').first
        wait_until(lambda: scan_input.get_attribute('readonly') is None,
            message="the scan field stays read-only")
        lines = tab.locator('.form-one2many table.tree tbody tr')

        def rows():
            return [r for r in lines.all_inner_texts() if lot in r]

        # the scanner types each scan and ends it with Enter
        for _ in range(2):
            scan(page, scan_input, text)
        wait_until(lambda: len(rows()) == 1,
            message="the scans did not add one line")
        screenshot(page, '1-scanned')

        # a lot that was never received is refused, nothing added
        dialog = scan_refused(
            page, scan_input, unknown, '从未验收入库|never received')
        screenshot(page, '2-refused')
        dialog.locator('button').last.click()
        assert len(rows()) == 1

        tab.locator('nav.toolbar button#save').click()
        registration, = wait_until(registrations,
            message="the registration was not saved")
        line, = admin('model.hrp.consumption.line.search_read',
            [('consumption', '=', registration['id'])], 0, None, None,
            ['product', 'quantity', 'lot.number'], {})
        assert line['product'] == product['id']
        assert line['quantity'] == 2
        assert line['lot.']['number'] == lot

        tab.locator('.form button[name="done"]').click()
        confirm = page.locator('.modal-dialog:visible')
        try:
            confirm.wait_for(timeout=3000)
            confirm.locator('button.btn-primary').last.click()
        except Exception:
            pass  # the button asks no confirmation
        wait_until(lambda: registrations()[0]['state'] == 'done',
            message="the registration was not posted")
        wait_until(lambda: form_selection(tab, 'state')
            == state[1]['done'])
        screenshot(page, '3-posted')
        assert not errors, errors
    finally:
        page.close()

    posted, = registrations()
    assert posted['done_by']
    assert stock() == 1
