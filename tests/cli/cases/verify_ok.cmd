@STRATA@ verify @FIXTURES@/dense.region
