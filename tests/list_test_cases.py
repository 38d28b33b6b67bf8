#!/usr/bin/env python3
"""Prints the name of each doctest TEST_CASE (and TEST_CASE_TEMPLATE, as a
pattern for its instances) in the given sources, one per line,
escaped for doctest's --test-case filter (a ',' separates filters). Meson uses
it to run each test case in its own process, as CTest's doctest_discover_tests
does."""
import re
import sys

CASE = re.compile(r'TEST_CASE(_TEMPLATE)?\(\s*"((?:[^"\\]|\\.)*)"')
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as source:
        for match in CASE.finditer(source.read()):
            name = match.group(2).replace('\\"', '"').replace(",", "\\,")
            print(name + "<*" if match.group(1) else name)  # a template's cases: name<type>
