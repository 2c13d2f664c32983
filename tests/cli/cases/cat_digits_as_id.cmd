@STRATA@ cat @FIXTURES@/digits.region 2
