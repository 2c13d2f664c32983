@STRATA@ inspect @FIXTURES@/dense.region @FIXTURES@/sparse.region
