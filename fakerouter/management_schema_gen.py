#!/usr/bin/env python3
# management_schema_gen.py writes management_schema.json: what the fake router's
# $management node needs of qdrouterd's management schema (entity types, their bases,
# attributes with defaults, operations, and the schema as GET-SCHEMA returns it), read
# through qdrouterd's own Python schema module so that the answers are the real agent's.
#
#   PYTHONPATH=/opt/amqp1kit/qdrouterd-1.19.0/lib/qpid-dispatch/python \
#       /usr/bin/python3 management_schema_gen.py > management_schema.json
#
# (go generate ./fakerouter/ runs this with the default install prefix.)
import json
import sys

from qpid_dispatch_internal.management.qdrouter import QdSchema

s = QdSchema()
types = []
for et in s.entity_types.values():
    attrs = []
    for name, a in et.attributes.items():
        typ = a.type if isinstance(a.type, str) else "enum"
        attrs.append({"name": name, "type": typ, "default": a.default})
    types.append({
        "name": et.name,
        "short": et.short_name,
        "bases": [b.name for b in et.all_bases],
        "operations": list(et.operations),
        "attributes": attrs,
    })
out = {
    "prefix": s.prefix,
    "types": types,
    "allAttributes": sorted(s.all_attributes),
    "schema": s.dump(),
}
json.dump(out, sys.stdout, indent=1)
sys.stdout.write("\n")
