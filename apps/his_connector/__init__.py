# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""HIS connector: the wire protocols to systems outside the hospital
resource planning (HIS, PACS, SMS modem).

It is the lowest HRP layer: it knows nothing of requisitions, stock or
equipment scores. Classes are registered in ``tryton.cfg``."""
