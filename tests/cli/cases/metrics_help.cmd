@STRATA@ metrics --help
