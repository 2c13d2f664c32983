@STRATA@ cat @FIXTURES@/dense.region delta
