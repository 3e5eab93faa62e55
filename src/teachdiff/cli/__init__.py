"""The command line: every ``teachdiff`` command, the only code that parses arguments or names a flag.

:mod:`.main` builds the parser from one module per command (:mod:`.data`, :mod:`.train`,
:mod:`.restore`, :mod:`.export`, :mod:`.evaluate`, :mod:`.reproduce`, :mod:`.weights`); :mod:`.args`
holds the argument types they share. Nothing here is imported by the library.
"""
