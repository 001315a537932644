# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""HRP equipment: the large-equipment register (大型设备台账) and the status
history of each device.

Classes are registered in ``tryton.cfg``; the link to a fixed asset is
registered only when ``account_asset`` is activated."""
