cp -r @FIXTURES@/store store && @STRATA@ rm store docs
