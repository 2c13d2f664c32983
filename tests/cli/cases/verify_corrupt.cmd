@STRATA@ verify @FIXTURES@/corrupt.region
