# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Real peer systems the tests talk to (GNU Health, FHIR, HL7 v2 MLLP), each
run as a process of its own on 127.0.0.1."""
