cp -r @FIXTURES@/store store && @STRATA@ rm store docs 0 1
