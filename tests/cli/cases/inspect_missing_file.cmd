@STRATA@ inspect @FIXTURES@/nonexistent.region
