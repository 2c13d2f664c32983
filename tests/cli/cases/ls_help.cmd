@STRATA@ ls --help
