@STRATA@ --help
