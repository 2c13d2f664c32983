@STRATA@ inspect @FIXTURES@/badsum.region
