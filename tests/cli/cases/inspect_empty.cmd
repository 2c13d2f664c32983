@STRATA@ inspect @FIXTURES@/empty.region
