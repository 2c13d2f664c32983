@STRATA@ cat --help
