# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Usage registration by scanning (术后使用登记扫码): after the surgery the
theatre nurse scans each used unit's UDI into the registration.

A scan (GS1, HIBC or MA code, parsed by ``barcode.py``) resolves the material
and the unit (its serial, or its lot) and is checked before a line is added:
the unit was received, is in this store (its own stock or a supplier's
consigned stock), is neither expired nor recalled, is not already on the
registration nor used by another one; a failed check raises a translated
error and adds nothing.  A scanned unit of a lot without serial counts one
more of the lot."""
from trytond.i18n import gettext
from trytond.model import fields
from trytond.pool import Pool, PoolMeta
from trytond.pyson import Eval
from trytond.rpc import RPC
from trytond.transaction import Transaction, without_check_access

from .consumption import ConsumptionError, _format_quantity, usable_lot


class Consumption(metaclass=PoolMeta):
    __name__ = 'hrp.consumption'

    scan = fields.Function(
        fields.Char(
            "Scan",
            states={
                'readonly': (Eval('state') != 'draft') | ~Eval('store'),
                'invisible': Eval('state') != 'draft',
                },
            help="Scan the used unit's UDI barcode (GS1, HIBC or MA code); "
            "each scan adds one unit."),
        'get_scan', setter='set_scan')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__rpc__.update({
                'scan_barcode': RPC(readonly=False, instantiate=0),
                })

    def get_scan(self, name):
        return None

    @classmethod
    def set_scan(cls, consumptions, name, value):
        pass

    @fields.depends(
        'scan', 'state', 'company', 'store', 'kind', 'date', 'lines')
    def on_change_scan(self):
        "A scan (one line of text ending in Enter) adds a unit"
        text = (self.scan or '').strip()
        self.scan = None
        if text:
            self.add_scan(text)

    @classmethod
    def scan_barcode(cls, consumption, text):
        """Scan text into the draft registration: add (or count) a line
        after the checks; return the id of the line"""
        if isinstance(consumption, int):
            consumption = cls(consumption)
        elif isinstance(consumption, (list, tuple)):
            consumption, = consumption
        cls._check_department_user([consumption.department.id])
        line = consumption.add_scan(text)
        line.consumption = consumption
        line.save()
        return line.id

    def add_scan(self, text):
        """Parse the scan, check the unit and add it to the lines (in
        memory): return the new or counted line; raise a translated error
        (and change nothing) when a check fails"""
        pool = Pool()
        Line = pool.get('hrp.consumption.line')
        from .barcode import find_product, parse
        if self.state not in {None, 'draft'}:
            raise ConsumptionError(gettext(
                    'hrp_materials.msg_consumption_wrong_state',
                    consumption=self.rec_name,
                    state=dict(self.fields_get(['state'])['state'][
                            'selection'])[self.state]))
        if not self.store or not self.company:
            raise ConsumptionError(gettext(
                    'hrp_materials.msg_consumption_scan_store'))
        scan = parse(text)
        product = find_product(scan)
        lot = self.scanned_lot(scan, product)
        quantity = 1 if scan.serial else (scan.quantity or 1)
        lines = list(self.lines or [])
        counted = None
        for line in lines:
            if line.product == product and line.lot == lot:
                if scan.serial:
                    raise ConsumptionError(gettext(
                            'hrp_materials.msg_consumption_scan_twice',
                            material=product.rec_name, unit=lot.number))
                counted = line
                break
        if counted:
            line = counted
            line.quantity = (line.quantity or 0) + quantity
        else:
            line = Line(product=product, lot=lot, quantity=quantity)
            lines.append(line)
        self.check_scanned(line, lines)
        self.lines = lines
        return line

    def scanned_lot(self, scan, product):
        """Return the lot the scan identifies (the serial of a
        serial-tracked material, else its lot number), or None for a
        material taken without lot; raise when it cannot be told"""
        pool = Pool()
        Lot = pool.get('stock.lot')
        Line = pool.get('hrp.consumption.line')
        template = product.template
        number = (scan.serial if template.serial_tracked else None) or (
            scan.lot or None)
        if not number:
            if Line(product=product).product_lot_required(self.store):
                raise ConsumptionError(gettext(
                        'hrp_materials.msg_consumption_scan_no_unit',
                        material=product.rec_name, barcode=scan.raw))
            return None
        with without_check_access():
            lots = Lot.search([
                    ('product', '=', product.id),
                    ('number', '=', number),
                    ], limit=1)
        if not lots:
            raise ConsumptionError(gettext(
                    'hrp_materials.msg_consumption_scan_unknown_unit',
                    material=product.rec_name, unit=number))
        return Lot(lots[0].id)

    def check_scanned(self, line, lines):
        """Check the scanned unit of line may be registered: usable, in the
        store for the quantity the lines take"""
        pool = Pool()
        Line = pool.get('hrp.consumption.line')
        Date = pool.get('ir.date')
        with Transaction().set_context(company=self.company.id):
            today = Date.today()
        product, lot = line.product, line.lot
        if lot and not usable_lot(lot, today):
            if getattr(lot, 'hrp_recalled', False):
                raise ConsumptionError(gettext(
                        'hrp_materials.msg_consumption_scan_recalled',
                        material=product.rec_name, unit=lot.number,
                        reason=lot.hrp_recall_reason or ''))
            raise ConsumptionError(gettext(
                    'hrp_materials.msg_consumption_scan_expired',
                    material=product.rec_name, unit=lot.number,
                    expiry=pool.get('ir.lang').get().strftime(
                        lot.shelf_life_expiration_date)))
        stock = Line.fefo_quantities(
            self.store, product, self.company, usable_only=True)
        available = sum(q for l, q, _ in stock if lot is None or l == lot)
        wanted = sum(l.quantity or 0 for l in lines
            if l.product == product and (lot is None or l.lot == lot))
        unit = product.default_uom
        if unit.round(wanted - available) <= 0:
            return
        if lot is not None:
            used = self.used_by(lot)
            if used:
                raise ConsumptionError(gettext(
                        'hrp_materials.msg_consumption_scan_used',
                        material=product.rec_name, unit=lot.number,
                        consumption=used.rec_name))
            raise ConsumptionError(gettext(
                    'hrp_materials.msg_consumption_scan_not_in_store',
                    material=product.rec_name, unit=lot.number,
                    store=self.store.rec_name,
                    quantity=_format_quantity(wanted, unit),
                    available=_format_quantity(max(available, 0), unit)))
        raise ConsumptionError(gettext(
                'hrp_materials.msg_consumption_stock_short',
                store=self.store.rec_name, material=product.rec_name,
                quantity=_format_quantity(wanted, unit),
                available=_format_quantity(max(available, 0), unit)))

    def used_by(self, lot):
        """Return the posted registration whose line used the unit of lot
        and was not reversed, or None"""
        pool = Pool()
        Line = pool.get('hrp.consumption.line')
        with without_check_access():
            lines = Line.search([
                    ('lot', '=', lot.id),
                    ('consumption.state', '=', 'done'),
                    ('reverse_move', '=', None),
                    ], order=[('id', 'DESC')], limit=1)
            if lines:
                return lines[0].consumption
