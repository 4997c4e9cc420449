"""Validates heapscope JSON reports against docs/report.schema.json (Debian's python3-jsonschema).
usage: validate_report.py SCHEMA REPORT...   exit 0 if all are valid; each problem on stderr."""
import json
import sys

import jsonschema

schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
validator = jsonschema.Draft202012Validator(schema)
problems = 0
for path in sys.argv[2:]:
    for error in validator.iter_errors(json.load(open(path))):
        problems += 1
        print(f"{path}: {'/'.join(map(str, error.absolute_path))}: {error.message}", file=sys.stderr)
sys.exit(1 if problems else 0)
