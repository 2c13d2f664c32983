cp -r @FIXTURES@/store store && @STRATA@ put store docs 0 - --name
