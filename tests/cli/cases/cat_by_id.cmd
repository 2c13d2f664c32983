@STRATA@ cat @FIXTURES@/dense.region 0
