@STRATA@ verify --json @FIXTURES@/dense.region
