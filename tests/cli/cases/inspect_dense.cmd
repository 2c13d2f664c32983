@STRATA@ inspect @FIXTURES@/dense.region
