@STRATA@ cat @FIXTURES@/dense.region 2
