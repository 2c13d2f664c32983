@STRATA@ verify --json @FIXTURES@/corrupt.region
