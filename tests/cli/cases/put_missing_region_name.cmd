cp -r @FIXTURES@/store store && @STRATA@ put store nope 0 - </dev/null
