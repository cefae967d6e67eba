"""Engineering tables as data: one module per NEC or IEEE table, named after its section.

Every module carries `CITATION` (standard, section, edition) so a rule that reads a value can
cite exactly where it came from. Values were checked against the sources listed in each module;
cells that sources disagree on are marked in a comment.
"""
