cp -r @FIXTURES@/store store && @STRATA@ rm store nope 0
