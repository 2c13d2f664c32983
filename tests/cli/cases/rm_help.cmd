@STRATA@ rm --help
