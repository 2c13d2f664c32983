@STRATA@ cat --name @FIXTURES@/dense.region 0
