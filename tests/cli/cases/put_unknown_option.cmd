cp -r @FIXTURES@/store store && @STRATA@ put --force store docs 0 -
