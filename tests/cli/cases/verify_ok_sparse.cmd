@STRATA@ verify @FIXTURES@/sparse.region
