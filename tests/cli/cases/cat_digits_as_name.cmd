@STRATA@ cat --name @FIXTURES@/digits.region 2
