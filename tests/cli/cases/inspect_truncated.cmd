@STRATA@ inspect @FIXTURES@/truncated.region
