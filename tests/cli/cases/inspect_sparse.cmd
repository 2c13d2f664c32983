@STRATA@ inspect @FIXTURES@/sparse.region
