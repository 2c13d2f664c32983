@STRATA@ stats --help
