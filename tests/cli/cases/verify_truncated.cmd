@STRATA@ verify @FIXTURES@/truncated.region
