@STRATA@ context @FIXTURES@/store docs
