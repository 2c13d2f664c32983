@STRATA@ verify --help
