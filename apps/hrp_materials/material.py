# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Materials (物资) are Tryton products with the hospital's master data."""
import datetime as dt
import re

from trytond.i18n import gettext
from trytond.model import fields
from trytond.pool import Pool, PoolMeta
from trytond.pyson import Bool, Eval
from trytond.transaction import Transaction

from .configuration import get_configuration
from .exceptions import MaterialValidationError

# 国家医保医用耗材代码: "C" followed by 26 digits (27 characters).
INSURANCE_CODE = re.compile(r'^C\d{26}$')

STORAGE_CONDITIONS = [
    (None, ""),
    ('room', "Room Temperature (10-30 °C)"),
    ('cool', "Cool (≤ 20 °C)"),
    ('refrigerated', "Refrigerated (2-8 °C)"),
    ('frozen', "Frozen (≤ -18 °C)"),
    ('dry', "Dry, Away from Light"),
    ]


class Category(metaclass=PoolMeta):
    __name__ = 'product.category'

    hrp_code = fields.Char("Material Category Code", strip=True)


class Template(metaclass=PoolMeta):
    __name__ = 'product.template'

    specification = fields.Char(
        "Specification", translate=False,
        help="Specification and model (规格型号).")
    manufacturer = fields.Many2One(
        'party.party', "Manufacturer", ondelete='RESTRICT')
    registration_number = fields.Char(
        "Registration Certificate", strip=True,
        help="The medical device registration certificate number (注册证号).")
    registration_expiry = fields.Date(
        "Registration Expiry",
        states={
            'required': Bool(Eval('registration_number')),
            })
    implant = fields.Boolean(
        "Implant", help="The material is implanted in the patient (植入).")
    high_value = fields.Function(
        fields.Boolean(
            "High-Value",
            help="An implant or a material whose unit cost reaches the "
            "configured threshold (高值耗材)."),
        'get_high_value', searcher='search_high_value')
    chargeable = fields.Boolean(
        "Chargeable", help="Used units are charged to the patient in the HIS.")
    insured = fields.Boolean(
        "Insured", help="Covered by the medical insurance.")
    insurance_code = fields.Char(
        "Medical-Insurance Code", strip=True,
        states={
            'invisible': ~Eval('insured'),
            'required': Bool(Eval('insured')),
            },
        help="The national medical-insurance consumable code (医保编码): "
        "C followed by 26 digits.")
    serial_tracked = fields.Boolean(
        "Serial-Tracked",
        help="Every unit carries its own serial number (one lot per unit).")
    storage_condition = fields.Selection(
        STORAGE_CONDITIONS, "Storage Condition")
    issue_per_purchase_unit = fields.Function(
        fields.Float("Issue Units per Purchase Unit", digits=(16, 4)),
        'get_issue_per_purchase_unit')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.lot_required.help = (
            (cls.lot_required.help or '')
            + "\nLot-tracked materials need a lot in these locations.")

    @classmethod
    def default_chargeable(cls):
        return False

    @classmethod
    def default_implant(cls):
        return False

    @classmethod
    def default_insured(cls):
        return False

    @classmethod
    def default_serial_tracked(cls):
        return False

    @fields.depends('implant', 'serial_tracked')
    def on_change_implant(self):
        if self.implant:
            self.serial_tracked = True

    @classmethod
    def _costly_template_ids(cls, threshold, templates=None):
        "Return the ids of the templates whose unit cost reaches threshold"
        CostPrice = Pool().get('product.cost_price')
        domain = [('cost_price', '>=', threshold)]
        company = Transaction().context.get('company')
        if company is not None:
            domain.append(('company', '=', company))
        if templates is not None:
            domain.append(
                ('product.template', 'in', [t.id for t in templates]))
        with Transaction().set_context(active_test=False):
            return {c.product.template.id for c in CostPrice.search(domain)}

    @classmethod
    def get_high_value(cls, templates, name):
        threshold = get_configuration().high_value_threshold
        costly = cls._costly_template_ids(threshold, templates)
        return {t.id: bool(t.implant) or t.id in costly for t in templates}

    @classmethod
    def search_high_value(cls, name, clause):
        _, operator, value = clause
        threshold = get_configuration().high_value_threshold
        costly = list(cls._costly_template_ids(threshold))
        if (operator == '=') == bool(value):
            return ['OR',
                ('implant', '=', True),
                ('id', 'in', costly),
                ]
        return [
            ('implant', '!=', True),
            ('id', 'not in', costly),
            ]

    def get_issue_per_purchase_unit(self, name):
        purchase_uom = getattr(self, 'purchase_uom', None)
        if not purchase_uom or not self.default_uom:
            return None
        return Pool().get('product.uom').compute_qty(
            purchase_uom, 1, self.default_uom, round=False)

    @classmethod
    def validate_fields(cls, templates, field_names):
        super().validate_fields(templates, field_names)
        today = Pool().get('ir.date').today()
        for template in templates:
            if field_names & {'insurance_code', 'insured'}:
                template.check_insurance_code()
            if field_names & {
                    'active', 'registration_number', 'registration_expiry'}:
                template.check_registration(today)

    def check_insurance_code(self):
        if self.insurance_code and not INSURANCE_CODE.match(
                self.insurance_code):
            raise MaterialValidationError(gettext(
                    'hrp_materials.msg_insurance_code_invalid',
                    code=self.insurance_code, material=self.rec_name))

    def check_registration(self, today=None):
        if today is None:
            today = Pool().get('ir.date').today()
        if (self.active and self.registration_expiry
                and self.registration_expiry < today):
            raise MaterialValidationError(gettext(
                    'hrp_materials.msg_registration_expired',
                    material=self.rec_name,
                    number=self.registration_number or '',
                    expiry=self.registration_expiry))

    @property
    def registration_valid(self):
        today = Pool().get('ir.date').today()
        return not (self.registration_expiry
            and self.registration_expiry < today)

    def registration_expires_within(self, days):
        today = Pool().get('ir.date').today()
        return bool(self.registration_expiry
            and self.registration_expiry <= today + dt.timedelta(days=days))


class Product(metaclass=PoolMeta):
    __name__ = 'product.product'

    gtin = fields.Function(
        fields.Char("GTIN"), 'get_gtin', searcher='search_gtin')

    def get_gtin(self, name):
        for identifier in self.identifiers:
            if identifier.type == 'ean':
                return identifier.code

    @classmethod
    def search_gtin(cls, name, clause):
        _, operator, value, *extra = clause
        return [('identifiers', 'where', [
                    ('type', '=', 'ean'),
                    ('code', operator, value, *extra),
                    ])]

    @classmethod
    def find_by_gtin(cls, gtin):
        "Return the product with the GTIN (any of GTIN-8/12/13/14) or None"
        Identifier = Pool().get('product.identifier')
        gtin = Identifier.normalise_gtin(gtin)
        products = cls.search([('gtin', '=', gtin)], limit=1)
        return products[0] if products else None


class ProductIdentifier(metaclass=PoolMeta):
    __name__ = 'product.identifier'

    @classmethod
    def __setup__(cls):
        super().__setup__()
        # UDI device identifiers of the HIBC and China MA (IDcode) schemes
        for item in [('hibc', "HIBC"), ('ma', "MA Code")]:
            if item not in cls.type.selection:
                cls.type.selection.append(item)

    @staticmethod
    def normalise_gtin(code):
        "Return the GTIN as 14 digits (the form AI (01) carries)"
        code = (code or '').strip().replace(' ', '')
        return code.rjust(14, '0') if code.isdigit() else code

    @classmethod
    def preprocess_values(cls, mode, values):
        values = super().preprocess_values(mode, values)
        if values.get('type') == 'ean' and values.get('code'):
            values['code'] = cls.normalise_gtin(values['code'])
        return values

    @classmethod
    def validate_fields(cls, identifiers, field_names):
        super().validate_fields(identifiers, field_names)
        if field_names & {'type', 'code'}:
            cls.check_gtin_unique(identifiers)

    @classmethod
    def check_gtin_unique(cls, identifiers):
        gtins = {}
        for identifier in identifiers:
            if identifier.type != 'ean':
                continue
            if identifier.code in gtins:
                raise MaterialValidationError(gettext(
                        'hrp_materials.msg_gtin_duplicate',
                        gtin=identifier.code,
                        material=gtins[identifier.code].product.rec_name))
            gtins[identifier.code] = identifier
        if not gtins:
            return
        others = cls.search([
                ('type', '=', 'ean'),
                ('code', 'in', list(gtins)),
                ('id', 'not in', [i.id for i in identifiers]),
                ], limit=1)
        if others:
            other, = others
            raise MaterialValidationError(gettext(
                    'hrp_materials.msg_gtin_duplicate',
                    gtin=other.code, material=other.product.rec_name))

