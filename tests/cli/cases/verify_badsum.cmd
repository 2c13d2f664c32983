@STRATA@ verify @FIXTURES@/badsum.region
