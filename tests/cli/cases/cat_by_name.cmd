@STRATA@ cat @FIXTURES@/dense.region gamma
