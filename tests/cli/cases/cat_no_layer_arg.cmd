@STRATA@ cat @FIXTURES@/dense.region
