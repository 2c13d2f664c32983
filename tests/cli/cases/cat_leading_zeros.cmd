@STRATA@ cat @FIXTURES@/sparse.region 0005
