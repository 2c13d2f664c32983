@STRATA@ cat @FIXTURES@/dense.region 9
