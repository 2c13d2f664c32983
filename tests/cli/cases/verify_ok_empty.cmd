@STRATA@ verify @FIXTURES@/empty.region
