# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""The ``hrp`` command: create, update and serve HRP sites.

This package is plain Python (not a Tryton module).  It drives trytond:
``hrp.site`` locates a site and its configuration, ``hrp.build`` creates and
updates its database in-process, ``hrp.sao`` installs the web desk and
``hrp.serve`` runs the server, cron and worker processes.  ``hrp.fixtures``
(the demo hospital) lives in the repository's ``fixtures/`` directory."""

#: The HRP Tryton modules, activated in this order on every site.
MODULES = ['his_connector', 'hrp_materials', 'hrp_equipment']

#: Language of the desk; English stays available as a user preference.
DESK_LANGUAGE = 'zh_CN'

#: Seed of the demo hospital generator (a fixed seed gives the same hospital
#: on every machine).
DEMO_SEED = 20261123

#: The demo administrator.
ADMIN_LOGIN = 'admin'
DEMO_ADMIN_PASSWORD = 'admin'
ADMIN_EMAIL = 'admin@hospital.example'

#: The sao release series matching trytond 8.0.
SAO_SPEC = 'tryton-sao@8.0'
