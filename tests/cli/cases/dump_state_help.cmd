@STRATA@ dump-state --help
