@STRATA@ verify @FIXTURES@/dense.region @FIXTURES@/sparse.region
