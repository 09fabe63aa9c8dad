"""Print one line per test case of a regrtest --junit-xml file: the case's
id and how it ended (ok, skipped, failure, error), sorted, for diffing the
same suites run natively and under coro-run (cpython-suites.sh)."""
import sys
import xml.etree.ElementTree as ET

lines = []
for path in sys.argv[1:]:
    for case in ET.parse(path).getroot().iter("testcase"):
        tags = {child.tag for child in case}
        # an error beats a failure beats a skip: a case can carry several
        outcome = next((t for t in ("error", "failure", "skipped") if t in tags), "ok")
        lines.append(f"{case.get('name')} {outcome}")
print("\n".join(sorted(lines)))
