@STRATA@ cat @FIXTURES@/nonexistent.region 0
