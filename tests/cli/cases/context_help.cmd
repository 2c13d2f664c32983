@STRATA@ context --help
