@STRATA@ context @FIXTURES@/dense.region docs:0
