"""The command line: every ``teachdiff`` command, the only code that parses arguments or names a flag.

:mod:`.main` builds the parser from one module per command (:mod:`.data`, :mod:`.train`,
:mod:`.restore`, :mod:`.export`, :mod:`.evaluate`, :mod:`.reproduce`, :mod:`.weights`); :mod:`.args`
holds the argument types they share. :mod:`.book` is the instructors' ``python -m teachdiff.cli.book``
(student versions of the notebooks). Nothing here is imported by the library.
"""
