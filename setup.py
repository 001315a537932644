"""One distribution for the HRP Tryton modules, the ``hrp`` command and the
demo hospital generator."""
from setuptools import setup

TRYTON = '>=8.0,<8.1'
TRYTON_MODULES = [
    'company', 'currency', 'party', 'product', 'stock', 'stock_lot',
    'stock_lot_sled', 'stock_supply', 'stock_consignment', 'purchase',
    'purchase_request',
    'account_invoice', 'analytic_account',
    'account_asset',
    ]
MODULES = ['his_connector', 'hrp_materials', 'hrp_equipment']

setup(
    name='hrp-materials-equipment',
    version='8.0.0',
    description='Hospital Resource Planning for materials and equipment '
    '(Tryton modules)',
    license='GPL-3.0-or-later',
    python_requires='>=3.11',
    packages=(
        MODULES
        + [f'{m}.tests' for m in MODULES]
        + ['his_connector.transports', 'hrp', 'hrp.fixtures']),
    package_dir={
        **{m: f'apps/{m}' for m in MODULES},
        **{f'{m}.tests': f'apps/{m}/tests' for m in MODULES},
        'his_connector.transports': 'apps/his_connector/transports',
        'hrp': 'apps/hrp',
        'hrp.fixtures': 'fixtures',
        },
    package_data={
        m: ['tryton.cfg', '*.xml', '*.fods', 'view/*.xml', 'locale/*.po',
            'icons/*.svg']
        for m in MODULES} | {
        f'{m}.tests': ['*.rst', '*.json', 'tryton.cfg'] for m in MODULES},
    install_requires=[
        f'trytond{TRYTON}',
        f'proteus{TRYTON}',
        *(f'trytond_{m}{TRYTON}' for m in TRYTON_MODULES),
        'python-stdnum',
        'psycopg[binary,pool]>=3',
        'werkzeug',
        'requests',
        'pyserial',
        # GS1 element strings (AI 01, 10, 11, 17, 21) on receiving scans
        'biip>=5,<6',
        # FHIR R4 (the R4B models) and HL7 v2 transports
        'fhir.resources>=8,<9',
        'hl7apy>=1.3.5,<2',
        ],
    extras_require={
        # smspdudecoder cross-checks the SMS PDU encoder; it breaks with
        # bitstring 5
        # aiosmtpd is the real SMTP server the supplier e-mails reach
        'test': ['pytest', 'playwright', 'smspdudecoder', 'bitstring<5',
            'aiosmtpd'],
        },
    entry_points={
        'trytond.modules': [f'{m} = {m}' for m in MODULES],
        'console_scripts': ['hrp = hrp.cli:main'],
        },
    zip_safe=False,
    )
